#!/usr/bin/env bash
# Prints one closing line for the whole run, summed over every cargo test binary:
# "tests: N passed, M failed" (doc-test binaries with no tests otherwise close the log).
set -euo pipefail
log=${1:?usage: test-summary.sh <cargo test output>}
awk '/^test result:/ {
       for (i = 1; i <= NF; i++) {
         if ($(i+1) ~ /^passed;?$/) p += $i
         if ($(i+1) ~ /^failed;?$/) f += $i
         if ($(i+1) ~ /^ignored;?$/) s += $i
       }
     }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
