# Sourced by the data-parallel CLI tests after lib.sh: skips the test (exit 0, no PASS) when the
# binary was built without MPI or mpirun is missing, else builds the tiny world (tiny_world.sh) and
# sets what mpirun needs here: running as root, no single-copy transport, a 60 s collective
# timeout, no LeakSanitizer under make asan (OpenMPI keeps its own allocations until exit), and
# MPIRUN, the launcher's common options (oversubscribed, not bound) for the test to extend.
if ! command -v mpirun >/dev/null 2>&1 || ! ldd "$PROMPTKD" 2>/dev/null | grep -q libmpi; then
    echo "SKIP $(basename "$0" .sh): $PROMPTKD was built without MPI (make MPI=0) or mpirun is missing"
    exit 0
fi
source tests/cli/tiny_world.sh
check world_built tiny_world_ok

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export PROMPTKD_MPI_TIMEOUT=60
[ -n "${PROMPTKD_SANITIZED:-}" ] && export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
MPIRUN=(mpirun --oversubscribe --bind-to none)
