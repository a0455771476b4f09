/*
 * probe.c — says whether this machine can run the GPU tests: prints
 * "gpu sm_XX NAME" and exits 0, or prints the reason there is no usable GPU
 * (target/cuda/cuda_api.c's cuda_available) and exits 1. `probe count`
 * prints how many CUDA devices the driver sees.
 */
#include <stdio.h>
#include <string.h>

#include "cuda_api.h"

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "count")) {
        printf("%d\n", cuda_device_count());
        return 0;
    }
    Error why = {0};
    if (!cuda_available(&why)) {
        printf("%s\n", why.msg);
        return 1;
    }
    CudaApi api = {0};
    Error err = {0};
    char name[128] = "?";
    if (cuda_api_load(&api, CUDA_LIB_DRIVER, &err) || api.cuInit(0)) {
        printf("%s\n", err.msg);
        return 1;
    }
    CUdevice d;
    if (api.cuDeviceGet(&d, 0) == 0) api.cuDeviceGetName(name, sizeof name, d);
    printf("gpu sm_%d %s\n", cuda_device_sm(&api, 0, &err), name);
    cuda_api_unload(&api);
    return 0;
}
