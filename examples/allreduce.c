/* MPI_Allreduce of a vector: element i of rank r is r + i. Every rank checks the sum it receives
 * against the closed form and rank 0 reports. Exit status 1 on any wrong element. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define N 1048576

int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long *mine = malloc(N * sizeof(long)), *sum = malloc(N * sizeof(long));
    for (long i = 0; i < N; i++) mine[i] = rank + i;
    MPI_Allreduce(mine, sum, N, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    long wrong = 0;
    for (long i = 0; i < N; i++) {
        long expected = (long)size * (size - 1) / 2 + (long)size * i;
        if (sum[i] != expected) wrong++;
    }
    long wrong_total = 0;
    MPI_Reduce(&wrong, &wrong_total, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Bcast(&wrong_total, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("allreduce: %d ranks, %d elements: sum[0]=%ld (expected %ld), sum[%d]=%ld: %s\n", size, N, sum[0],
               (long)size * (size - 1) / 2, N - 1, sum[N - 1], wrong_total == 0 ? "OK" : "WRONG");
    free(mine);
    free(sum);
    MPI_Finalize();
    return wrong_total == 0 ? 0 : 1;
}
