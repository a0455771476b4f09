/*
 * mpi_api.h — the MPI library, loaded with dlopen at run time so that rxc
 * builds and runs without MPI installed. Only the calls distributed.c makes
 * are resolved.
 *
 * ABI: MPI's handles (MPI_COMM_WORLD, MPI_SUM, MPI_FLOAT, ...) are macros
 * whose values each implementation defines differently. Open MPI's are the
 * addresses of exported globals (ompi_mpi_comm_world, ompi_mpi_op_sum,
 * ompi_mpi_float, ...), which dlsym returns, and its MPI_IN_PLACE is
 * (void *)1. This loader therefore speaks Open MPI's ABI only (Open MPI 4
 * and 5, soname libmpi.so.40); any other libmpi (MPICH, Intel MPI) is
 * refused with a message saying so. RXC_MPI_LIB names the library to load
 * instead of the default search.
 */
#ifndef RXC_MPI_API_H
#define RXC_MPI_API_H

#include <stddef.h>
#include "error.h"

typedef void *MpiHandle; /* MPI_Comm, MPI_Datatype and MPI_Op in Open MPI are pointers */

typedef struct MpiApi {
    void *lib;
    char path[256]; /* the library loaded */
    int (*Initialized)(int *flag);
    int (*Init)(int *argc, char ***argv);
    int (*Finalize)(void);
    int (*Abort)(MpiHandle comm, int code);
    int (*Comm_rank)(MpiHandle comm, int *rank);
    int (*Comm_size)(MpiHandle comm, int *size);
    int (*Allreduce)(const void *send, void *recv, int count, MpiHandle type, MpiHandle op, MpiHandle comm);
    int (*Bcast)(void *buf, int count, MpiHandle type, int root, MpiHandle comm);
    int (*Gather)(const void *send, int scount, MpiHandle stype, void *recv, int rcount, MpiHandle rtype, int root,
                  MpiHandle comm);
    int (*Barrier)(MpiHandle comm);
    /* Nonblocking: the gradient buckets (grad_buckets.c). MPI_Request is a
     * pointer in Open MPI; Test and Wait take MPI_STATUS_IGNORE (NULL). */
    int (*Iallreduce)(const void *send, void *recv, int count, MpiHandle type, MpiHandle op, MpiHandle comm,
                      MpiHandle *request);
    int (*Test)(MpiHandle *request, int *flag, void *status);
    int (*Wait)(MpiHandle *request, void *status);
    /* The ranks on this node (distributed.c: the local rank picks the GPU). */
    int (*Comm_split_type)(MpiHandle comm, int split_type, int key, MpiHandle info, MpiHandle *newcomm);
    int (*Comm_free)(MpiHandle *comm);
    MpiHandle comm_world, op_sum, op_max, t_float, t_double, t_byte, info_null;
    void *in_place;
    int comm_type_shared; /* MPI_COMM_TYPE_SHARED */
} MpiApi;

/* Loads libmpi and resolves every entry. Returns 0, or -1 with a message
 * (no libmpi found, or a libmpi that is not Open MPI). */
int mpi_api_load(MpiApi *api, Error *err);
void mpi_api_unload(MpiApi *api);

#endif
