/* Ping-pong between rank 0 and rank 1: half the round-trip time (latency) and bandwidth by message
 * size, 8 B to 4 MiB. Run it with two processes on two nodes: --np 2 --npernode 1.
 * Usage: pingpong [ITERATIONS]: round trips per size up to 64 KiB (default 1000; a tenth above). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) {
        if (rank == 0) fprintf(stderr, "pingpong needs 2 processes\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const int max = 4 << 20;
    const int small_iters = argc > 1 && atoi(argv[1]) >= 10 ? atoi(argv[1]) : 1000;
    char *buf = malloc(max);
    memset(buf, 1, max);
    if (rank == 0) printf("%10s %12s %14s\n", "bytes", "latency_us", "bandwidth_MBps");
    for (int bytes = 8; bytes <= max; bytes *= 2) {
        int iters = bytes <= 65536 ? small_iters : small_iters / 10;
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        for (int i = 0; i < iters; i++) {
            if (rank == 0) {
                MPI_Send(buf, bytes, MPI_CHAR, 1, 0, MPI_COMM_WORLD);
                MPI_Recv(buf, bytes, MPI_CHAR, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            } else if (rank == 1) {
                MPI_Recv(buf, bytes, MPI_CHAR, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                MPI_Send(buf, bytes, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
            }
        }
        double one_way = (MPI_Wtime() - start) / iters / 2;
        if (rank == 0) printf("%10d %12.2f %14.1f\n", bytes, one_way * 1e6, bytes / one_way / 1e6);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
