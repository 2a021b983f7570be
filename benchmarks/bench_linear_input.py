"""Work grows linearly with the input: each text path timed at n and 2n characters.

A quadratic step (a string grown one character at a time, a slice per character) is invisible
on a sentence and takes minutes on a 1 MB line: `predict` took 40 s on one 1 MB token, and
`pretrain` 202 s on a 2 M character word, before split_on_punctuation cut runs out whole.
Doubling the input must about double the time; the script fails (exit status 1) when any
case's ratio t(2n) / t(n) is above --max-ratio (default 3: linear is 2, quadratic 4).

    python benchmarks/bench_linear_input.py            # n = 400,000 characters
    python benchmarks/bench_linear_input.py --n 100000

CPU time (time.process_time), the best of --repeat runs, so another job on the machine
matters little. Unit tests never time anything; this is where speed is checked.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from minibert.data import read_labelled, read_text_corpus
from minibert.token_data import split_words
from minibert.tokenizer import SPECIAL_TOKENS, Tokenizer

VOCAB = [*SPECIAL_TOKENS, *"abcdefghijklmnopqrstuvwxyz(),.!", *(f"##{c}" for c in "abcdef")]


def cases(tokenizer: Tokenizer, folder: Path) -> dict:
    """name -> function of n (characters) that runs that path once on an input of size n."""

    def text_file(n: int, name: str, text: str) -> Path:
        path = folder / f"{n}-{name}"
        path.write_text(text, encoding="utf-8")
        return path

    return {
        "tokenize: one word of n letters": lambda n: tokenizer.tokenize("a" * n),
        "tokenize: letters and punctuation": lambda n: tokenizer.tokenize("ab," * (n // 3)),
        "tokenize: n letters, then a space": lambda n: tokenizer.encode("b" * n + " a"),
        "split_words: leading '(' n times": lambda n: split_words("(" * n + "a"),
        "split_words: trailing '.' n times": lambda n: split_words("a" + "." * n),
        "read_text_corpus: one n-character line": lambda n: read_text_corpus(
            text_file(n, "corpus.txt", "a" * n + "\n")),
        "read_labelled: one n-character text": lambda n: read_labelled(
            text_file(n, "data.tsv", "text\tlabel\n" + "a" * n + "\tx\n")),
    }


def seconds(fn, n: int, repeat: int, tokenizer: Tokenizer) -> float:
    best = float("inf")
    for _ in range(repeat):
        tokenizer._cache.clear()  # each run does the work, none reads a cached word
        start = time.process_time()
        fn(n)
        best = min(best, time.process_time() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400_000, help="the smaller input, characters")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-ratio", type=float, default=3.0)
    args = parser.parse_args()
    tokenizer = Tokenizer(VOCAB)
    failed = []
    print(f"{'case':<42} {'n':>10} {'t(n) s':>8} {'t(2n) s':>8} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for name, fn in cases(tokenizer, Path(folder)).items():
            small = seconds(fn, args.n, args.repeat, tokenizer)
            large = seconds(fn, 2 * args.n, args.repeat, tokenizer)
            ratio = large / max(small, 1e-6)
            # below 10 ms the ratio is mostly noise: such a case is fast enough anyway
            bad = ratio > args.max_ratio and large > 1e-2
            print(f"{name:<42} {args.n:>10,} {small:>8.3f} {large:>8.3f} {ratio:>6.2f}"
                  f"{'   NOT LINEAR' if bad else ''}")
            if bad:
                failed.append(name)
    if failed:
        print(f"grows faster than the input: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
