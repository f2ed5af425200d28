"""`shangliang bench encoder`: encoder speed on this machine.

Prints texts/second for short (~20 chars) and long (~300 chars) concerns, single-text latency
p50/p95, and, with --compare-int8, the agreement and speed of the dynamic-int8 variant.
The last line is one JSON object of the figures. Texts are synthetic (built from phrases below),
so the figures are reproducible anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from typing import Any

import numpy as np

PLACES = ["幸福路", "建设街道", "东湖村", "阳光小区3号楼", "人民广场地铁站", "第二实验小学门口", "滨江公园", "老城区菜市场"]
PROBLEMS = [
    "路灯坏了", "下水道堵了", "噪音扰民", "垃圾没人清运", "电梯经常故障", "占道经营", "停车位不够",
    "自来水发黄", "红绿灯时间太短", "暖气不热", "共享单车乱停", "工地夜间施工", "道路坑洼积水", "物业费乱涨",
]
DETAILS = [
    "已经持续了两个多月", "晚上老人孩子出门很不安全", "打过12345热线但一直没有回音", "周边居民意见很大",
    "下雨天根本没法走路", "我们业主联名反映过好几次", "希望有关部门尽快派人来看看", "影响了大家的正常生活",
    "上周还有人因此受伤", "物业说不归他们管，街道说要等预算", "早高峰的时候特别严重", "附近还有一所幼儿园",
]


def synthetic_concerns(n: int, target_chars: int, seed: int = 7) -> list[str]:
    """Resident-like concerns of about `target_chars` characters each."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        text = f"{rng.choice(PLACES)}{rng.choice(PROBLEMS)}"
        while len(text) < target_chars:
            text += "，" + rng.choice(DETAILS)
        texts.append(text[: max(target_chars, 8)] + "。")
    return texts


def throughput(encoder: Any, texts: list[str]) -> tuple[float, float]:
    """(texts per wall-clock second, texts per CPU second of this process).

    The CPU-time figure does not depend on what else the shared machine is doing.
    """
    encoder.encode(texts[: min(4, len(texts))])  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - wall), len(texts) / max(time.process_time() - cpu, 1e-9)


def latencies_ms(encoder: Any, texts: list[str]) -> list[float]:
    encoder.encode(texts[:2])
    out = []
    for text in texts:
        start = time.perf_counter()
        encoder.encode([text])
        out.append((time.perf_counter() - start) * 1000)
    return out


def measure(encoder: Any, n_short: int, n_long: int, n_single: int) -> dict[str, float]:
    short = synthetic_concerns(n_short, 20, seed=1)
    long = synthetic_concerns(n_long, 300, seed=2)
    single = synthetic_concerns(n_single // 2, 20, seed=3) + synthetic_concerns(n_single - n_single // 2, 300, seed=4)
    random.Random(5).shuffle(single)
    lat = latencies_ms(encoder, single)
    short_wall, short_cpu = throughput(encoder, short)
    long_wall, long_cpu = throughput(encoder, long)
    return {
        "short_texts_per_s": round(short_wall, 1),
        "long_texts_per_s": round(long_wall, 1),
        "short_texts_per_cpu_s": round(short_cpu, 1),
        "long_texts_per_cpu_s": round(long_cpu, 1),
        "single_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "single_p95_ms": round(float(np.percentile(lat, 95)), 1),
    }


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = np.sum(a * b, axis=1)
    return {"mean_cosine": round(float(cos.mean()), 5), "min_cosine": round(float(cos.min()), 5)}


def run(args: argparse.Namespace) -> int:
    from index.encoder import encoder_from_settings, encoder_overrides

    overrides = encoder_overrides(threads=args.threads, runtime=args.runtime, model_path=args.model,
                                  max_seq_length=args.max_seq_length, batch_size=args.batch_size,
                                  quantize=args.quantize)
    encoder = encoder_from_settings(**overrides)
    figures: dict[str, Any] = {
        "model": encoder.name,
        "dim": encoder.dim,
        "runtime": encoder.runtime,
        "threads": encoder.threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "max_seq_length": encoder.max_seq_length,
        "batch_size": encoder.batch_size,
        "quantize": encoder.quantized,
    }
    print(f"encoder {encoder!r}, {encoder.runtime} with {encoder.threads} thread(s)")
    figures.update(measure(encoder, args.n_short, args.n_long, args.n_single))
    print(
        f"short (~20 chars): {figures['short_texts_per_s']} texts/s   "
        f"long (~300 chars): {figures['long_texts_per_s']} texts/s   "
        f"single text: p50 {figures['single_p50_ms']} ms, p95 {figures['single_p95_ms']} ms"
    )
    print(
        f"per CPU second: short {figures['short_texts_per_cpu_s']}, long {figures['long_texts_per_cpu_s']} "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    figures["load_average"] = round(os.getloadavg()[0], 2)

    if args.compare_int8 and not encoder.quantized:
        int8 = encoder_from_settings(**{**overrides, "quantize": True})
        sample = synthetic_concerns(64, 20, seed=11) + synthetic_concerns(64, 300, seed=12)
        agree = agreement(encoder.encode(sample), int8.encode(sample))
        speed = measure(int8, args.n_short, args.n_long, args.n_single)
        figures["int8"] = {**speed, **agree}
        print(f"int8: {speed}  agreement with fp32: {agree}")

    if args.truncation:
        # How much the head-truncation policy loses: texts cut at max_seq_length vs at 512 tokens.
        full = encoder_from_settings(**{**overrides, "max_seq_length": 512})
        long = synthetic_concerns(32, 700, seed=13)
        tokens = [len(ids) for ids in full.token_ids(long)]
        figures["truncation"] = {
            "chars": 700,
            "median_tokens": int(np.median(tokens)),
            **agreement(encoder.encode(long), full.encode(long)),
        }
        print(f"truncation at {encoder.max_seq_length} vs 512 tokens on ~700-char texts: {figures['truncation']}")

    print(json.dumps(figures, ensure_ascii=False))
    return 0


def register(sub: Any, groups: dict[str, Any]) -> None:
    parser = groups["bench"].add_parser("encoder", help="encoder throughput and latency (texts/s, p50/p95 ms)")
    parser.add_argument("--model", help="a sentence-transformers folder (default: encoder.model_path)")
    parser.add_argument("--threads", type=int, help="encoder threads (default: encoder.threads in intake.yml)")
    parser.add_argument("--runtime", choices=["torch", "onnx"], help="default: encoder.runtime in intake.yml")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--max-seq-length", type=int)
    parser.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=None,
                        help="dynamic int8 Linear layers (default: encoder.quantize)")
    parser.add_argument("--compare-int8", action="store_true", help="also measure the int8 variant and its agreement")
    parser.add_argument("--truncation", action="store_true", help="measure what head truncation changes")
    parser.add_argument("--n-short", type=int, default=128)
    parser.add_argument("--n-long", type=int, default=32)
    parser.add_argument("--n-single", type=int, default=40)
    parser.set_defaults(func=run)
