/*
 * mpi_api.c — finds libmpi, checks that it is Open MPI, and resolves the
 * functions and predefined handles that mpi_api.h lists.
 */
#include "mpi_api.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Open MPI's MPI_IN_PLACE (mpi.h: #define MPI_IN_PLACE ((void *) 1)). */
#define OMPI_IN_PLACE ((void *)1)
/* Open MPI's MPI_COMM_TYPE_SHARED: the first value of mpi.h's split-type enum. */
#define OMPI_COMM_TYPE_SHARED 0

static void *open_lib(MpiApi *api) {
    const char *override = getenv("RXC_MPI_LIB");
    const char *names[] = {override, "libmpi.so.40", "libmpi.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!names[i] || !names[i][0]) continue;
        /* RTLD_GLOBAL: Open MPI's own plugins (mca_*.so) resolve libmpi's
         * symbols through the global namespace. */
        void *lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
        if (lib) {
            snprintf(api->path, sizeof api->path, "%s", names[i]);
            return lib;
        }
        if (i == 0) return NULL; /* an explicit RXC_MPI_LIB that fails is not replaced silently */
    }
    return NULL;
}

int mpi_api_load(MpiApi *api, Error *err) {
    memset(api, 0, sizeof *api);
    api->lib = open_lib(api);
    if (!api->lib)
        return error_set(err,
                      "cannot load libmpi (%s): distributed training needs Open MPI "
                      "(Debian: apt-get install openmpi-bin libopenmpi-dev; or set RXC_MPI_LIB)",
                      dlerror());
    void *world = dlsym(api->lib, "ompi_mpi_comm_world");
    if (!world) {
        dlclose(api->lib);
        api->lib = NULL;
        return error_set(err,
                      "%s is not Open MPI (no symbol ompi_mpi_comm_world): rxc loads MPI at run time and "
                      "knows only Open MPI's ABI for the handles MPI_COMM_WORLD, MPI_SUM and MPI_FLOAT",
                      api->path);
    }
    struct { void **slot; const char *name; } want[] = {
        {(void **)&api->Initialized, "MPI_Initialized"}, {(void **)&api->Init, "MPI_Init"},
        {(void **)&api->Finalize, "MPI_Finalize"},       {(void **)&api->Abort, "MPI_Abort"},
        {(void **)&api->Comm_rank, "MPI_Comm_rank"},     {(void **)&api->Comm_size, "MPI_Comm_size"},
        {(void **)&api->Allreduce, "MPI_Allreduce"},     {(void **)&api->Bcast, "MPI_Bcast"},
        {(void **)&api->Gather, "MPI_Gather"},           {(void **)&api->Barrier, "MPI_Barrier"},
        {(void **)&api->Iallreduce, "MPI_Iallreduce"},   {(void **)&api->Test, "MPI_Test"},
        {(void **)&api->Wait, "MPI_Wait"},
        {(void **)&api->Comm_split_type, "MPI_Comm_split_type"}, {(void **)&api->Comm_free, "MPI_Comm_free"},
        {&api->info_null, "ompi_mpi_info_null"},
        {&api->op_sum, "ompi_mpi_op_sum"},               {&api->op_max, "ompi_mpi_op_max"},
        {&api->t_float, "ompi_mpi_float"},               {&api->t_double, "ompi_mpi_double"},
        {&api->t_byte, "ompi_mpi_byte"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        *want[i].slot = dlsym(api->lib, want[i].name);
        if (!*want[i].slot) {
            int rc = error_set(err, "%s lacks %s (an Open MPI older than 4?)", api->path, want[i].name);
            mpi_api_unload(api);
            return rc;
        }
    }
    api->comm_world = world;
    api->in_place = OMPI_IN_PLACE;
    api->comm_type_shared = OMPI_COMM_TYPE_SHARED;
    return 0;
}

void mpi_api_unload(MpiApi *api) {
    if (api->lib) dlclose(api->lib);
    memset(api, 0, sizeof *api);
}
