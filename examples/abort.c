/* The last rank calls MPI_Abort with status 3 (or the first argument): the job's exit status
 * must be that status, wherever the rank ran. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int status = argc > 1 ? atoi(argv[1]) : 3;
    if (rank == size - 1) {
        fprintf(stderr, "abort: rank %d aborts with status %d\n", rank, status);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
    sleep(30);
    MPI_Finalize();
    return 0;
}
