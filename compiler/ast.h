/*
 * ast.h — the syntax tree of a .net file, as grammar/parser.y builds it.
 *
 * The tree is purely syntactic: names are not resolved, identifiers used as
 * words (`imagefolder`, `adamw`) are EX_NAME like variables, and nothing is
 * evaluated. The front end (frontend.c) splices included files in (so a
 * consumer sees one flat list of declarations, each with its own file in
 * its SrcLoc) and applies `--set` overrides by replacing value expressions,
 * then hands the tree to elaborate() (network -> Graph) and to
 * recipe_from_ast() (data/augment/train -> Recipe).
 *
 * All nodes and strings live in the file's arena and are released together
 * by ast_free. The language itself is described in docs/language.md.
 */
#ifndef RXC_AST_H
#define RXC_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "graph.h" /* SrcLoc */
#include "util.h"  /* StrBuf */

/* ---- arena ---------------------------------------------------------------- */
typedef struct Arena Arena;
Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t n); /* zeroed, aligned for any type */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);

/* ---- expressions ---------------------------------------------------------- */
typedef enum AstExprKind {
    EX_INT,     /* v.i */
    EX_FLOAT,   /* v.f */
    EX_STRING,  /* v.s (escapes resolved) */
    EX_BOOL,    /* v.b: true / false */
    EX_NAME,    /* v.name: a variable, or a word such as imagefolder */
    EX_LIST,    /* v.list: [a, b, c]; also 3x224x224 (dims = true) */
    EX_UNARY,   /* v.unary */
    EX_BINARY,  /* v.binary */
    EX_CALL,    /* v.call: op, block or builtin call, maybe labelled */
    EX_INDEX,   /* v.index: base[index] */
    EX_IF,      /* v.cond: if c then a else b */
    EX_RANGE,   /* v.range: lo..hi (hi excluded); only as a for-loop iterable or a list index */
} AstExprKind;

typedef enum AstUnOp { UN_NEG, UN_NOT } AstUnOp;

typedef enum AstBinOp {
    BIN_ADD, BIN_SUB, BIN_MUL,
    BIN_DIV,      /* '/': true division, float result */
    BIN_IDIV,     /* '//': floor division of integers */
    BIN_MOD,      /* '%' */
    BIN_POW,      /* '^': right-associative, binds tighter than unary minus */
    BIN_EQ, BIN_NE, BIN_LT, BIN_LE, BIN_GT, BIN_GE,
    BIN_AND, BIN_OR,
} AstBinOp;

typedef struct AstExpr AstExpr;

typedef struct AstArg {
    const char *key;   /* NULL for a positional argument */
    SrcLoc loc;        /* of the key, or of the value when positional */
    AstExpr *value;
} AstArg;

/* A layer label, written before a call: `conv1: conv(...)`,
 * `downsample.0: conv(...)`, or a template `"layer{s+1}.{i}": block(...)`.
 * The label text is the concatenation of its parts; an expression part is
 * evaluated by the elaborator and printed in decimal (an int) or as is (a
 * string). A plain label has one text part. */
typedef struct AstLabelPart {
    const char *text;  /* non-NULL: literal text */
    AstExpr *expr;     /* non-NULL: an interpolated `{expr}` */
} AstLabelPart;

typedef struct AstLabel {
    AstLabelPart *parts;
    int n_parts;
    SrcLoc loc;
} AstLabel;

/* The parser keeps every expression at most this deep (an error beyond), so
 * recursive consumers need no stack checks of their own. */
#define AST_MAX_EXPR_DEPTH 200
/* The end bound of `x[c0:]`: past every end, and slices clamp to the end */
#define AST_SLICE_END INT64_MAX
/* ... and bodies ({ }) at most this deeply nested. */
#define AST_MAX_BODY_DEPTH 64

struct AstExpr {
    AstExprKind kind;
    SrcLoc loc;        /* the expression's first character (an operator's for unary/binary) */
    int depth;         /* 1 for a leaf; 1 + the deepest child otherwise */
    union {
        int64_t i;
        double f;
        const char *s;
        bool b;
        const char *name;
        struct { AstExpr **items; int n; bool dims; } list;
        struct { AstUnOp op; AstExpr *x; } unary;
        struct { AstBinOp op; AstExpr *a, *b; } binary;
        struct {
            const char *callee;
            SrcLoc callee_loc;
            AstArg *args;
            int n_args;
            AstLabel *label;  /* NULL when unlabelled */
        } call;
        struct { AstExpr *base, *index; } index;
        struct { AstExpr *c, *then, *otherwise; } cond;
        struct { AstExpr *lo, *hi; } range;
    } v;
};

/* ---- statements ----------------------------------------------------------- */
typedef enum AstStmtKind {
    ST_SETTING, /* `name value` (no '='): a network parameter or a data/train setting */
    ST_LET,     /* `name = value` */
    ST_IF,      /* `if c { then } else { otherwise }` (else-if: an ST_IF alone in otherwise) */
    ST_FOR,     /* `for var in iterable { body }`; iterable is EX_RANGE or a list */
    ST_RETURN,  /* `return value` */
    ST_ASSERT,  /* `assert value` or `assert value, "message"` (message may be NULL) */
} AstStmtKind;

typedef struct AstStmt AstStmt;

typedef struct AstBody {
    AstStmt **items;
    int n;
} AstBody;

struct AstStmt {
    AstStmtKind kind;
    SrcLoc loc;          /* the statement's first token */
    const char *name;    /* ST_SETTING, ST_LET: the name; ST_FOR: the loop variable */
    SrcLoc name_loc;
    AstExpr *value;      /* SETTING, LET, RETURN, ASSERT: the value; IF: the condition; FOR: the iterable */
    const char *message; /* ST_ASSERT */
    AstBody body;        /* IF: then; FOR: body */
    AstBody otherwise;   /* IF: else (n == 0 when absent) */
    bool overridden;     /* set by --set: value came from the command line */
};

/* ---- declarations --------------------------------------------------------- */
typedef enum AstDeclKind {
    DECL_NETWORK,  /* network NAME { body } */
    DECL_BLOCK,    /* block NAME(params) { body } */
    DECL_CONST,    /* NAME = value at top level: a constant visible everywhere (stmt) */
    DECL_DATA,     /* data { settings }  (body holds ST_SETTING only) */
    DECL_AUGMENT,  /* augment train|val: op -> op -> ... */
    DECL_TRAIN,    /* train { settings } (body holds ST_SETTING only) */
    DECL_INCLUDE,  /* include "path": replaced by the included declarations in a loaded file */
} AstDeclKind;

typedef struct AstParam {
    const char *name;
    SrcLoc loc;
    AstExpr *def;  /* default value, or NULL (required) */
} AstParam;

typedef struct AstDecl {
    AstDeclKind kind;
    SrcLoc loc;          /* the keyword */
    const char *name;    /* NETWORK, BLOCK: its name; AUGMENT: "train" or "val"; INCLUDE: the path as written */
    SrcLoc name_loc;
    AstParam *params;    /* BLOCK */
    int n_params;
    AstBody body;        /* NETWORK, BLOCK, DATA, TRAIN */
    AstStmt *stmt;       /* CONST: an ST_LET */
    AstExpr **ops;       /* AUGMENT: each EX_NAME (`hflip`) or EX_CALL (`random_crop(224)`) */
    int n_ops;
} AstDecl;

typedef struct AstFile {
    const char *path;    /* the main file's display name (as in SrcLoc.file) */
    AstDecl **decls;     /* in source order, includes spliced in where they were written */
    int n_decls, cap_decls;
    Arena *arena;
} AstFile;

/* ---- parsing (grammar/parser.y) ------------------------------------------ */
/* Parses one source, registered with diag_add_source (file is the returned
 * name), appending its declarations to out (allocating in out->arena).
 * Syntax errors are reported to d; the parser recovers at statement and
 * declaration boundaries so several are reported. Returns the number of
 * syntax errors (0: clean). */
int ast_parse_source(Diag *d, const char *file, const char *text, size_t len, AstFile *out);
/* Parses a single expression (a --set value, a label interpolation);
 * returns NULL after reporting. Locations start at `at`. */
AstExpr *ast_parse_expr(Diag *d, const char *file, const char *text, size_t len, SrcLoc at, Arena *arena);
/* Parses a pipeline as written after `augment train:`; returns the number of
 * ops (>= 1) with *ops in arena, or -1 after reporting. */
int ast_parse_pipeline(Diag *d, const char *file, const char *text, size_t len, Arena *arena, AstExpr ***ops);

AstFile *ast_file_new(const char *path);
void ast_free(AstFile *f);

/* ---- helpers (ast.c) ------------------------------------------------------ */
/* Prints the tree back in the language's syntax (canonical spacing, one
 * statement per line): the "resolved text" of a model. */
void ast_print(const AstFile *f, StrBuf *out);
/* The same without the data/train settings for which omit(section, name)
 * is true (the text a checkpoint's source hash covers). */
void ast_print_omitting(const AstFile *f, bool (*omit)(AstDeclKind section, const char *name), StrBuf *out);
void ast_print_expr(const AstExpr *e, StrBuf *out);
const char *ast_binop_text(AstBinOp op);  /* "+", "//", "==", "and", ... */

/* The first declaration of a kind (NULL if none); the network, the train
 * section, ... */
const AstDecl *ast_find_decl(const AstFile *f, AstDeclKind kind, const char *name /* NULL: any */);
/* The value of `key` in a section body (ST_SETTING or ST_LET), or NULL.
 * E.g. ast_setting(ast, DECL_TRAIN, "init"), ast_setting(ast, DECL_NETWORK, "classes"). */
const AstExpr *ast_setting(const AstFile *f, AstDeclKind section, const char *key);
/* A keyword argument of a call expression, or NULL. */
const AstExpr *ast_call_arg(const AstExpr *call, const char *key);

/* ---- the rest of the front end (recipe.c) --------------------------------- */
struct Recipe;
/* Fills r (already recipe_defaults'd) from the data, augment and train
 * sections, checking every key, word and value; reports to d. Returns the
 * number of errors. */
int recipe_from_ast(const AstFile *f, struct Recipe *r, Diag *d);
/* Converts one augment op (EX_NAME or EX_CALL) into a TransformOp; 0 or -1 after reporting. */
struct TransformOp;
int transform_from_expr(const AstExpr *e, struct TransformOp *op, Diag *d);
/* Converts a whole pipeline (checking that normalize comes last); on success
 * replaces *out (malloc'd) and returns 0, else -1 after reporting. */
int transforms_from_ops(AstExpr *const *ops, int n, struct TransformOp **out, int *n_out, Diag *d);
/* The keys of a section ("data", "train") or the keyword arguments a call
 * setting takes ("optimizer", "schedule", "loss"), for --set and messages. */
const char *const *recipe_keys(const char *section, int *n);
/* Settings that change how a run reports or where its files go, never what
 * it computes (run_dir, log_every, workers): a checkpoint's source hash
 * leaves them out, so that changing one does not count as another model. */
bool recipe_run_only_setting(AstDeclKind section, const char *name);

/* ---- the whole front end on a text (frontend.c) ---------------------------
 * model_load without the file system for the main text (fuzzing, tests):
 * parses, resolves includes (only when allow_includes), applies overrides,
 * elaborates and fills the recipe, reporting to d. Returns LOAD_OK or
 * LOAD_BAD_FILE; on LOAD_OK *out owns a graph and a recipe. */
struct Model;
struct LoadOptions;
int frontend_load_text(const char *name, const char *text, size_t len, const struct LoadOptions *opt,
                       bool allow_includes, Diag *d, struct Model *out);

#endif
