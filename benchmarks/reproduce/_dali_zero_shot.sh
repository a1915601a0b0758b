# The DALI zero-shot study (spec/dali.md §8-§9, matrix §9.8) for one environment. Sourced by
# dali_zero_shot_walker.sh and dali_zero_shot_ball_in_cup.sh after they set:
#   ENV_NAME       walker | ball_in_cup
#   DEFAULT_STEPS  the env's paper budget (§9.8 / §11.2)
#   GRID_SIZE      contexts of its evaluation grid (§8.1)
#   REFERENCE      label of the reference method of the probability-of-improvement panel (§9.6), e.g. DALI-S
#   REFERENCE_METHOD  its METHODS name, e.g. dali-s
# Settings (environment variables, all optional): see README.md or the wrappers' headers.

source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

ROOT=$(realpath -m "${ROOT:-runs/reproduce/dali}")
WORKERS=${WORKERS:-4}
SEEDS=${SEEDS:-"0 42 1337 13 71 1994 1997 908 2102 3"}
EXPERT_SEEDS=${EXPERT_SEEDS:-"0 42 1337 13 71"}
METHODS=${METHODS:-"dreamer crssm-s crssm-d dali-s dali-s-x dali-d dali-d-x"}
MODALITIES=${MODALITIES:-"state pixels"}
SETTINGS=${SETTINGS:-"single_0 single_1 double_box"}
STEPS=${STEPS:-$DEFAULT_STEPS}
EPISODES=${EPISODES:-50}
REPS=${REPS:-2000}
STAGES=${STAGES:-"experts train eval report"}
SHARD=${SHARD:-0/1}
PARTIAL_REPORT=${PARTIAL_REPORT:-0}
PROGRESS=${PROGRESS:-1}
read -r -a TRAIN_ARGS <<<"${TRAIN_ARGS:-}" # extra KEY=VALUE config overrides, e.g. "train.device=cuda"

SEEDS=${SEEDS//,/ }
EXPERT_SEEDS=${EXPERT_SEEDS//,/ }
progress_flag=$([[ "$PROGRESS" == 1 ]] && echo --progress || echo --no-progress)
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }

run_dir() { echo "$ROOT/$ENV_NAME/$1/$2/$3/seed$4"; } # modality setting method seed

# method name -> `wmlab train dreamer` arguments
method_args() {
    case "$1" in
        dreamer | crssm-s | crssm-d | dali-s | dali-d) echo "--variant $1" ;;
        dali-s-x) echo "--variant dali-s ctx.crossmodal=true" ;;
        dali-d-x) echo "--variant dali-d ctx.crossmodal=true" ;;
        *)
            echo "unknown method '$1' in METHODS (dreamer crssm-s crssm-d dali-s dali-s-x dali-d dali-d-x)" >&2
            return 1
            ;;
    esac
}

# true when RUN/results/eval.jsonl holds a full grid evaluation (GRID_SIZE contexts, EPISODES each) of checkpoint $2
grid_done() {
    local file="$1/results/eval.jsonl" n
    [[ -f "$file" ]] || return 1
    n=$(grep -F '"source": "grid"' "$file" | grep -F "\"checkpoint_step\": $2," |
        grep -cF "\"episodes\": $EPISODES," || true)
    ((n >= GRID_SIZE))
}

EXPERTS_JSON="$ROOT/experts/$ENV_NAME/experts.json"
log "DALI zero-shot study: $ENV_NAME, $STEPS env steps, methods [$METHODS], modalities [$MODALITIES]," \
    "settings [$SETTINGS], seeds [$SEEDS], root $ROOT, shard $SHARD, stages [$STAGES]"
for method in $METHODS; do method_args "$method" >/dev/null; done # fail early on a typo

# 1. experts and the random baseline (§9.2-§9.3): ROOT/experts/ENV/experts.json. ball_in_cup trains no expert
#    (R_expert = 1000) and only evaluates the random policy. Runs on shard 0 only.
if has_stage experts && in_shard 0; then
    if [[ -f "$EXPERTS_JSON" ]]; then
        log "skip experts: $EXPERTS_JSON exists (delete it to re-evaluate)"
    else
        wm experts --env "$ENV_NAME" --root "$ROOT/experts" --preset paper --steps "$STEPS" \
            --seeds "$(tr ' ' ',' <<<"$EXPERT_SEEDS")" --episodes "$EPISODES" --workers "$WORKERS" \
            "${TRAIN_ARGS[@]}"
    fi
fi

# 2. + 3. train every run of the matrix, then evaluate it on the whole grid (§8.1, §9.1)
job=0
for seed in $SEEDS; do
    for modality in $MODALITIES; do
        for setting in $SETTINGS; do
            for method in $METHODS; do
                job=$((job + 1))
                in_shard $((job - 1)) || continue
                run=$(run_dir "$modality" "$setting" "$method" "$seed")
                if has_stage train; then
                    if (($(latest_step "$run") >= STEPS)); then
                        log "skip training: $run is trained ($(latest_step "$run") env steps)"
                    else
                        # shellcheck disable=SC2046 # method_args is split on purpose
                        wm train dreamer --run "$run" --env "$ENV_NAME" --obs "$modality" --contexts "$setting" \
                            $(method_args "$method") --preset paper --steps "$STEPS" --seed "$seed" \
                            "$progress_flag" "${TRAIN_ARGS[@]}"
                    fi
                fi
                if has_stage eval; then
                    step=$(latest_step "$run")
                    if ((step < STEPS)); then
                        log "skip grid evaluation: $run is not trained yet"
                    elif grid_done "$run" "$step"; then
                        log "skip grid evaluation: $run/results/eval.jsonl holds it (checkpoint $step)"
                    else
                        wm eval "$run" --grid --episodes "$EPISODES" --workers "$WORKERS"
                    fi
                fi
            done
        done
    done
done

# 4. the zero-shot report per modality (§9.5-§9.7): IQM / median / mean / optimality gap with 95% stratified-bootstrap
#    CIs per region, pooled over the training settings, and P(REFERENCE > each method). Only on shard 0, and only
#    when every run of the matrix has its grid evaluation (PARTIAL_REPORT=1: report what there is).
if has_stage report && in_shard 0; then
    if [[ ! -f "$EXPERTS_JSON" ]]; then
        log "skip reports: no expert table at $EXPERTS_JSON yet (stage 'experts')"
    else
        for modality in $MODALITIES; do
            runs=() missing=0
            for seed in $SEEDS; do
                for setting in $SETTINGS; do
                    for method in $METHODS; do
                        run=$(run_dir "$modality" "$setting" "$method" "$seed")
                        step=$(latest_step "$run")
                        if ((step >= STEPS)) && grid_done "$run" "$step"; then
                            runs+=("$run")
                        else
                            missing=$((missing + 1))
                        fi
                    done
                done
            done
            out="$ROOT/$ENV_NAME/report-$modality"
            if ((${#runs[@]} == 0)) || { ((missing > 0)) && [[ "$PARTIAL_REPORT" != 1 ]]; }; then
                log "skip the $modality report: $missing of $((${#runs[@]} + missing)) runs lack a grid evaluation" \
                    "(PARTIAL_REPORT=1 reports the others)"
                continue
            fi
            ref=()
            [[ -n "$REFERENCE" && " $METHODS " == *" $REFERENCE_METHOD "* ]] && ref=(--reference "$REFERENCE")
            wm report "${runs[@]}" --experts "$EXPERTS_JSON" --out "$out" --reps "$REPS" "${ref[@]}" \
                --title "DALI zero-shot: $ENV_NAME, $modality (paper preset)"
            log "wrote $out/zero_shot/zero_shot.md"
        done
    fi
fi
log "done ($ENV_NAME)"
