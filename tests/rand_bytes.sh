# rand_bytes.sh: sourced by the shell tests. Fixed-seed pseudo-random bytes (a 32-bit LCG)
# instead of /dev/urandom, so that a failure replays: rand_bytes N SEED. The seed is printed;
# MOEFUZZ_TEST_SEED overrides it.
rand_bytes() {
  local n=$1 s=$2 h out="" i
  for ((i = 0; i < n; i++)); do
    s=$(((s * 1103515245 + 12345) & 0xffffffff))
    printf -v h '\\x%02x' $(((s >> 16) & 255))
    out+=$h
  done
  printf "$out"
}
rseed=${MOEFUZZ_TEST_SEED:-1}
echo "random bytes from seed $rseed (MOEFUZZ_TEST_SEED=$rseed reruns them)"
