/*
 * recipe.h — the training run a .net file describes: data, augmentation,
 * optimizer, schedule, loss, and run settings.
 *
 * The front end fills a Recipe (with defaults for everything the file does
 * not say, see recipe_defaults); the data pipeline (runtime/data) reads the
 * TransformOp lists and the dataset fields; the trainer reads the rest.
 * Strings are owned by the Recipe and released by recipe_free.
 */
#ifndef RXC_RECIPE_H
#define RXC_RECIPE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum TransformKind {
    TF_RESIZE,              /* shorter side to size[0] (size[1] == 0), or exactly size[0] x size[1] (h, w); bilinear, antialias */
    TF_RANDOM_RESIZE,       /* shorter side to one of sizes[0..n_sizes), uniformly */
    TF_RANDOM_CROP,         /* size[0] x size[1], after zero padding `padding` on every side */
    TF_CENTER_CROP,         /* size[0] x size[1] */
    TF_RANDOM_RESIZED_CROP, /* torchvision's, to size[0] x size[1], with scale and ratio */
    TF_HFLIP,               /* with probability p */
    TF_AUTOAUGMENT,         /* policy; fill is the fill colour of geometric ops */
    TF_NORMALIZE,           /* (x/255 - mean) / std, per channel; turns uint8 into float: only float ops follow */
    TF_RANDAUGMENT,         /* torchvision's RandAugment(num_ops, magnitude, num_magnitude_bins = bins, fill) */
    TF_TRIVIALAUGMENT,      /* torchvision's TrivialAugmentWide(num_magnitude_bins = bins, fill) */
    TF_RANDOM_ERASING,      /* after normalize: with probability p, a box (scale, ratio) of the float image set to
                               erase_value, or to standard normal draws with erase_random (torchvision's) */
    TF_COUNT
} TransformKind;

typedef enum AutoAugmentPolicy { AA_IMAGENET, AA_CIFAR10, AA_SVHN } AutoAugmentPolicy;

#define RXC_MAX_SIZES 16

typedef struct TransformOp {
    TransformKind kind;
    int size[2];                 /* {h, w}; resize: {short_side, 0} */
    int sizes[RXC_MAX_SIZES];    /* random_resize */
    int n_sizes;
    int padding;                 /* random_crop */
    float p;                     /* hflip probability (default 0.5) */
    float scale[2], ratio[2];    /* random_resized_crop (defaults 0.08..1, 3/4..4/3) */
    AutoAugmentPolicy policy;
    int fill;                    /* autoaugment fill level (default 128; randaugment, trivialaugment: 0) */
    int num_ops, magnitude, bins; /* randaugment (2, 9, 31); trivialaugment: bins (31) */
    float mean[3], std[3];       /* normalize, in 0..1 units as torchvision */
    float erase_value[3];        /* random_erasing's per-channel value (default 0) */
    bool erase_random;           /* random_erasing(value=random): normal draws per element */
} TransformOp;

typedef enum DataLayout { DATA_IMAGEFOLDER, DATA_CIFAR10, DATA_CIFAR100, DATA_DEMO } DataLayout;
typedef enum CacheMode { CACHE_DECODED, CACHE_JPEG, CACHE_NONE } CacheMode;
typedef enum OptKind { OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT_LAMB } OptKind;
typedef enum SchedKind { SCHED_CONSTANT, SCHED_COSINE, SCHED_STEP, SCHED_MULTISTEP } SchedKind;
typedef enum WarmupKind { WARMUP_LINEAR, WARMUP_CONSTANT } WarmupKind;
typedef enum DeviceKind { DEVICE_AUTO, DEVICE_CPU, DEVICE_CUDA } DeviceKind;
/* PREC_AUTO is the recipe's default and is resolved for a device before
 * compiling (target_precision in target.h): bf16 on GPUs with bf16 tensor
 * cores, fp32 elsewhere. It is last so that Target.precisions' bits stay. */
typedef enum Precision { PREC_FP32, PREC_TF32, PREC_BF16, PREC_AUTO } Precision;

/* `recompute`: which BatchNorm/elementwise outputs backward rebuilds from
 * kept inputs instead of keeping (fuse.c): auto is the target's choice
 * (Target.recompute_chain_limit), none keeps all of them (the fewest bytes,
 * the most memory), blocks rebuilds a residual block's from its own kept
 * tensors, stages a whole stage's chain of block outputs (the least memory). */
typedef enum Recompute { RECOMPUTE_AUTO, RECOMPUTE_NONE, RECOMPUTE_BLOCKS, RECOMPUTE_STAGES } Recompute;

#define RXC_MAX_MILESTONES 16

typedef struct Recipe {
    /* data */
    char *data_root;        /* e.g. "data/imagenette2"; NULL: none given */
    DataLayout layout;
    char *train_split;      /* "train" */
    char *val_split;        /* "val" */
    char *class_names;      /* optional file: "<folder> <display name>" per line */
    CacheMode cache;
    int workers;            /* 0: all cores */
    bool drop_last;
    TransformOp *train_tf;
    int n_train_tf;
    TransformOp *val_tf;
    int n_val_tf;

    /* optimization */
    int epochs;
    int batch;
    int accum_steps;        /* gradient accumulation; 1 = none */
    uint64_t seed;
    bool deterministic;     /* results independent of thread count (default true) */
    bool sync_bn;           /* data-parallel: BatchNorm statistics over every rank's samples (SyncBatchNorm) */
    OptKind opt;
    double lr, momentum, beta1, beta2, eps, weight_decay;
    bool nesterov;
    bool no_decay_bn_bias;  /* no weight decay on BN parameters and biases */
    double max_grad_norm;   /* lamb: timm's Lamb clipping of the global gradient norm inside the step; 0: none */
    bool trust_clip;        /* lamb: trust ratio at most 1 (timm's LAMBC) */
    bool always_adapt;      /* lamb: trust ratio also for tensors without weight decay */
    SchedKind sched;
    bool sched_per_step;    /* false: stepped once per epoch, as the seed */
    double eta_min;         /* cosine */
    int t_max;              /* cosine period in epochs (or steps); 0: the whole run */
    int step_size;          /* step */
    double gamma;           /* step, multistep */
    int milestones[RXC_MAX_MILESTONES];
    int n_milestones;
    int warmup_epochs;      /* linear warmup; 0: none */
    int warmup_steps;       /* warmup in optimizer steps instead (a per-step schedule); 0: none */
    WarmupKind warmup_kind; /* linear (LinearLR) or constant (ConstantLR) */
    double warmup_start;    /* factor at the start of warmup (default 0.01); constant: the factor throughout */
    bool warmup_from_lr_init; /* linear warmup starts at warmup_lr_init (timm's), not at warmup_start * lr */
    double warmup_lr_init;
    bool warmup_overlaps;   /* the schedule runs from step 0 and warmup replaces its first values (timm's
                               default, warmup_prefix=False); false: it starts after warmup (SequentialLR) */
    double label_smoothing;
    double mixup_alpha;     /* mixup's Beta(alpha, alpha); 0: off (runtime/mix.h) */
    double cutmix_alpha;    /* cutmix's; 0: off */
    double mix_prob;        /* probability that a batch is mixed (default 1) */
    double mix_switch_prob; /* with both on: probability of cutmix rather than mixup (default 0.5) */
    double clip_grad_norm;  /* clip the gradients' global L2 norm to this (clip_grad_norm_); 0: no clipping */
    double ema_decay;       /* `ema`: EMA of the weights and BN buffers (timm's ModelEmaV2); 0: off, else in (0, 1) */
    int ema_every;          /* `ema_every`: it moves after every ema_every-th optimizer step (default 1) */

    /* run */
    DeviceKind device;
    int device_index;        /* --device cuda:K: K; -1: each rank's local GPU (local rank % GPUs) */
    Precision precision;
    Recompute recompute;
    char *run_dir;          /* where checkpoints and metrics go (default "runs/<network>") */
    int log_every;          /* steps between progress lines when not on a terminal */
} Recipe;

void recipe_defaults(Recipe *r);  /* the seed's recipe minus data and augmentation */
void recipe_free(Recipe *r);
const char *transform_name(TransformKind k); /* the language's spelling */
const char *precision_name(Precision p);     /* "fp32", "tf32", "bf16", "auto" */
const char *recompute_name(Recompute r);     /* "auto", "none", "blocks", "stages" */

#endif
