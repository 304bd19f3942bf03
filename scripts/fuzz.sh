#!/usr/bin/env bash
# Runs authd's cargo-fuzz targets one after another for a bounded time each
# and prints what they did. Not part of CI (it needs nightly and takes
# minutes); see docs/fuzzing.md.
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh jwt scope
#
# Environment:
#   FUZZ_SECONDS     seconds of fuzzing per target (default 60)
#   FUZZ_KEEP_GOING  1: fork mode (-fork=1 -ignore_crashes=1): a target goes
#                    on after a crash and every crashing input is saved, at
#                    the cost of throughput (each job reloads the corpus);
#                    default: in-process, a target stops at its first crash
#   FUZZ_SANITIZER      cargo fuzz --sanitizer (default address)
#   FUZZ_ARGS           extra libFuzzer flags
#
# Per target: the corpus grows in fuzz/corpus/TARGET (seeded from
# fuzz/seeds/TARGET), crashing inputs land in fuzz/artifacts/TARGET, the
# libFuzzer log in fuzz/logs/TARGET.log. Before fuzzing, every input in
# fuzz/regressions/TARGET is replayed: one that fails counts as a crash, one
# that passes joins the corpus. New crashing inputs are replayed to group them
# by where they fail. Exits 1 when any target crashed or a regression failed.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz="$root/fuzz"
seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
all_targets=(form basic_auth redirect_uri scope jwt)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo +nightly install cargo-fuzz" >&2
    exit 2
fi

cd "$root" || exit 2
echo "building fuzz targets (sanitizer: $sanitizer)..."
# All targets at once: they share one build of authd.
cargo +nightly fuzz build --sanitizer "$sanitizer" || exit 2

triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
bin_dir="$fuzz/target/$triple/release"
mkdir -p "$fuzz/logs"

# Where an input makes the target fail: the panic's location and message, or
# the sanitizer's / libFuzzer's error line.
failure_of() {
    local bin="$1" input="$2" out
    out="$(timeout 60 "$bin" -runs=1 "$input" 2>&1)" && return 1
    local where
    where="$(printf '%s\n' "$out" | grep -aE -m1 -A1 'panicked at' | sed -E "s/^thread .* panicked at /panic at /" | paste -sd ' ' -)"
    [ -z "$where" ] && where="$(printf '%s\n' "$out" | grep -aE -m1 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' | sed -E 's/^==[0-9]+==//')"
    printf '%s\n' "${where:-failed without a message}"
}

artifact_list() {
    find "$1" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | sort
}

rows=()
findings=()
failed=0
for target in "${targets[@]}"; do
    bin="$bin_dir/$target"
    if [ ! -x "$bin" ]; then
        echo "no such fuzz target: $target" >&2
        exit 2
    fi
    corpus="$fuzz/corpus/$target"
    artifacts="$fuzz/artifacts/$target"
    log="$fuzz/logs/$target.log"
    mkdir -p "$corpus" "$artifacts"
    artifact_list "$artifacts" >"$log.before"

    # Regressions first: each saved input must pass now.
    regressions=0
    regressions_failed=0
    if [ -d "$fuzz/regressions/$target" ]; then
        for input in "$fuzz/regressions/$target"/*; do
            [ -f "$input" ] || continue
            regressions=$((regressions + 1))
            if failure="$(failure_of "$bin" "$input")"; then
                regressions_failed=$((regressions_failed + 1))
                findings+=("$target: regression ${input#"$root"/} still fails: $failure")
            else
                cp "$input" "$corpus/regression-$(basename "$input")"
            fi
        done
    fi

    echo "fuzzing $target for ${seconds}s..."
    mode=()
    if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then mode=(-fork=1 -ignore_crashes=1); fi
    started=$SECONDS
    seeds=()
    [ -d "$fuzz/seeds/$target" ] && seeds=("$fuzz/seeds/$target")
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    "$bin" "${mode[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} \
        "$corpus" "${seeds[@]}" >"$log" 2>&1
    status=$?

    # Executions: the final "#N DONE" line of an in-process run, else the
    # last "#N" stat line (a run stopped by a crash; fork mode's "#N:"),
    # else stat::number_of_executed_units.
    execs="$(grep -aoE '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 | tr -dc '0-9')"
    [ -z "$execs" ] && execs="$(grep -aoE '^#[0-9]+[: ]' "$log" | tail -n 1 | tr -dc '0-9')"
    [ -z "$execs" ] && execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    elapsed=$((SECONDS - started))
    rate=$(( ${execs:-0} / (elapsed > 0 ? elapsed : 1) ))
    corpus_size="$(find "$corpus" -type f | wc -l)"

    # New crashing inputs, grouped by where they fail (a panic's file:line).
    # Files that appeared, plus those the log names: an input that crashed
    # before has the same name (its SHA-1) and so is no new file.
    new_artifacts="$({
        artifact_list "$artifacts" | comm -13 "$log.before" -
        sed -n 's/.*Test unit written to //p' "$log"
    } | sort -u)"
    rm -f "$log.before"
    crashes=0
    distinct=()
    while IFS= read -r artifact; do
        [ -n "$artifact" ] || continue
        crashes=$((crashes + 1))
        failure="$(failure_of "$bin" "$artifact")" || failure="does not reproduce alone"
        case "$failure" in
            "panic at "*) key="${failure%%: *}" ;;
            *) key="${failure:0:60}" ;;
        esac
        known=0
        for seen in "${distinct[@]}"; do [ "$seen" = "$key" ] && known=1; done
        if [ "$known" = 0 ]; then
            distinct+=("$key")
            findings+=("$target: $failure (e.g. ${artifact#"$root"/})")
        fi
    done <<<"$new_artifacts"
    if [ "$crashes" -eq 0 ] && [ "$status" -ne 0 ]; then
        findings+=("$target: libFuzzer exited $status without an artifact; see ${log#"$root"/}")
        crashes="exit $status"
        failed=1
    fi
    [ "$crashes" != 0 ] && failed=1
    [ "$regressions_failed" -gt 0 ] && failed=1
    rows+=("$(printf '%-13s %11s %7s %7s %8s %9s %12s' "$target" "${execs:-0}" "${rate:-?}" \
        "$corpus_size" "$crashes" "${#distinct[@]}" "$regressions_failed/$regressions")")
done

echo
printf '%-13s %11s %7s %7s %8s %9s %12s\n' target executions exec/s corpus crashes distinct "regress fail"
printf '%s\n' "${rows[@]}"
if [ "${#findings[@]}" -gt 0 ]; then
    echo
    echo "findings:"
    printf '  %s\n' "${findings[@]}"
fi
echo
echo "logs: fuzz/logs/; replay an input: fuzz/target/$triple/release/TARGET FILE"
exit "$failed"
