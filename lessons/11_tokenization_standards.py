"""Lesson 11: different standards of tokenization, measured on real text.

    .venv/bin/python lessons/11_tokenization_standards.py
    .venv/bin/python lessons/11_tokenization_standards.py --corpus my_text.txt   # your own text

Four ways to cut text into tokens, each given a vocabulary built from the same training text and
then measured on text it has never seen (the support tickets: train.tsv builds, test.tsv
measures; with --corpus, the first 90 % of the file's lines build and the last 10 % measure):

    words and punctuation    the vocabulary is every word seen in training
    WordPiece, trained here  a vocabulary learned from the same training text
    WordPiece, BERT's        the 30,522 tokens of bert-base-uncased (MiniLM's vocabulary)
    characters               the vocabulary is every character seen in training

For each: vocabulary size, the out-of-vocabulary rate (share of tokens of the unseen text that
the vocabulary cannot represent) and tokens per text (a ticket, or a line of your file). Then
the card's "neuroplasticity".
"""

import argparse
from collections import Counter
from pathlib import Path

from _common import banner, minilm_dir

from minibert.data import read_labelled, read_text_corpus
from minibert.datasets import support_tickets_dir
from minibert.tokenizer import UNK, BasicTokenizer, Tokenizer, vocabulary_coverage, wordpiece

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--corpus", type=Path, default=None,
                    help="a text file of your own (one sentence or paragraph a line)")
parser.add_argument("--vocab-size", type=int, default=2000,
                    help="size of the WordPiece vocabulary trained here (default 2000)")
args = parser.parse_args()

if args.corpus is None:
    source = "support tickets (train.tsv builds the vocabularies, test.tsv measures)"
    train_lines = read_labelled(support_tickets_dir() / "train.tsv").texts
    test_lines = read_labelled(support_tickets_dir() / "test.tsv").texts
else:
    lines = read_text_corpus(args.corpus)
    if len(lines) < 10:
        raise SystemExit(f"{args.corpus}: {len(lines)} non-empty lines; give at least 10")
    cut = int(0.9 * len(lines))
    source = f"{args.corpus} (first {cut} lines build, last {len(lines) - cut} measure)"
    train_lines, test_lines = lines[:cut], lines[cut:]
print(f"text: {source}")
print(f"{len(train_lines)} training lines, {len(test_lines)} unseen lines")

basic = BasicTokenizer(lowercase=True)  # the same cleaning and lower-casing for every scheme


def words_of(line: str) -> list[str]:
    return basic.tokenize(line)


def chars_of(line: str) -> list[str]:
    return [c for w in words_of(line) for c in w]  # characters of the cleaned words, no spaces


# Every scheme is a function line -> tokens and a vocabulary (a set of tokens), plus the token
# that marks "not in the vocabulary". Words and characters: a token outside the vocabulary is
# out of vocabulary. WordPiece: a word it cannot spell at all becomes [UNK].
word_vocab = {w for line in train_lines for w in words_of(line)}
char_vocab = {c for line in train_lines for c in chars_of(line)}
trained = Tokenizer.train(train_lines, vocab_size=args.vocab_size)
bert = Tokenizer.from_pretrained(minilm_dir())


def known_or_unk(tokens: list[str], vocab: set[str]) -> list[str]:
    return [t if t in vocab else UNK for t in tokens]


SCHEMES = [
    ("words and punctuation", len(word_vocab),
     lambda line: known_or_unk(words_of(line), word_vocab)),
    ("WordPiece, trained here", trained.vocab_size, trained.tokenize),
    ("WordPiece, BERT's", bert.vocab_size, bert.tokenize),
    ("characters", len(char_vocab), lambda line: known_or_unk(chars_of(line), char_vocab)),
]


banner("1. Vocabulary size, out-of-vocabulary rate and length, on text never seen")
print(f"{'scheme':<26} {'vocabulary':>10} {'OOV rate':>9} {'tokens/text':>11} "
      f"{'texts with OOV':>15}")
results = {}
for name, size, tokenize in SCHEMES:  # vocabulary_coverage: exercise 11.1, minibert/tokenizer.py
    r = results[name] = vocabulary_coverage(tokenize, test_lines)
    print(f"{name:<26} {size:>10,} {r['oov_rate']:>9.2%} {r['tokens_per_text']:>11.1f} "
          f"{r['texts_with_oov']:>9} of {len(test_lines)}")

words, wp_here, wp_bert, chars = (results[name] for name, _, _ in SCHEMES)
length = {name: r["tokens_per_text"] for name, r in results.items()}  # tokens per text
L_words, L_here, L_bert, L_chars = (length[name] for name, _, _ in SCHEMES)
print()
print(f"- Whole words: {words['oov_rate']:.2%} of the unseen words are not in the "
      f"{len(word_vocab):,}-word vocabulary; {words['texts_with_oov']} of {len(test_lines)} "
      "texts lose at least one word to [UNK].")
print(f"- Characters almost never fail ({chars['oov_rate']:.2%} OOV) but a text is "
      f"{L_chars / L_words:.1f}x as many tokens as in words: "
      "longer inputs, and each token means little on its own.")
print(f"- WordPiece sits in between: OOV {wp_here['oov_rate']:.2%} (trained here) and "
      f"{wp_bert['oov_rate']:.2%} (BERT's), at {L_here / L_words:.2f}x "
      f"and {L_bert / L_words:.2f}x the words' length.")
print(f"- A vocabulary of {trained.vocab_size:,} pieces learned from this text alone spells "
      f"{'more' if L_here > L_bert else 'fewer'} tokens per "
      f"text than BERT's {bert.vocab_size:,} ({L_here:.1f} vs {L_bert:.1f}).")

banner("2. Words the training text never had: how each scheme spells them")
unseen = sorted({w for line in test_lines for w in words_of(line)} - word_vocab)
print(f"{len(unseen)} distinct words of the unseen text are missing from the word vocabulary; "
      "the first few:")
for w in unseen[:6]:
    print(f"  {w:<16} words: [UNK]   here: {' '.join(trained.tokenize(w)):<24} "
          f"BERT: {' '.join(bert.tokenize(w))}")

banner('3. "neuroplasticity": word pieces are not morphemes')
MORPHEMES = {"neuroplasticity": ["neuro", "##plastic", "##ity"],
             "neuroscience": ["neuro", "##science"], "plasticity": ["plastic", "##ity"],
             "studying": ["study", "##ing"]}
print("The card's Method B splits 'neuroplasticity' into 'neuro' + 'plasticity', pieces that")
print("carry meaning. Real WordPiece vocabularies were learned from frequencies, not meaning:")
matches = 0
for word, morphemes in MORPHEMES.items():
    pieces = wordpiece(word, bert.vocab)
    matches += pieces == morphemes
    print(f"  {word:<16} BERT: {' '.join(pieces):<26} morphemes: {' '.join(morphemes):<22} "
          f"same: {pieces == morphemes}")
print(f"-> the pieces are the morphemes for {matches} of {len(MORPHEMES)} words. Frequent words")
print("   stay whole (no morpheme split at all); a rare one is cut where the vocabulary happens")
print("   to have pieces, not where its meaning divides.")
shared = set(wordpiece("neuroplasticity", bert.vocab)) & (
    set(wordpiece("neuroscience", bert.vocab)) | set(wordpiece("plasticity", bert.vocab)))
print(f"pieces 'neuroplasticity' shares with 'neuroscience' or 'plasticity': {sorted(shared)}")
print(f"trained here: neuroplasticity -> {' '.join(trained.tokenize('neuroplasticity'))}")
print("The pieces still let the model see a rare word as a sequence of known, trained")
print("vectors (no [UNK]), and attention can combine them; but the split follows frequency")
print("statistics of the training text, and a piece like '##pl' means nothing by itself.")

banner("4. The trainer's choice: merge the most frequent pair, or the likeliest")
print("Tokenizer.train starts from characters and merges one pair of pieces (a, b) at a time.")
print("Which pair? 'frequency' (the default, as Hugging Face's trainer and BPE): the most")
print("frequent. 'likelihood' (the classic WordPiece criterion, exercise 11.2 in")
print("minibert/wordpiece_trainer.py): the largest count(a b) / (count(a) count(b)), a pair whose")
print("parts rarely occur apart. The same training text and --vocab-size (a trainer stops")
print("early when no pair is left that occurs twice):")
likeliest = Tokenizer.train(train_lines, vocab_size=args.vocab_size, criterion="likelihood")
criteria = {"frequency": trained, "likelihood": likeliest}
coverage = {name: vocabulary_coverage(t.tokenize, test_lines) for name, t in criteria.items()}


def learned(tokenizer: Tokenizer, n: int) -> list[str]:
    """The first n pieces the trainer learned (in merge order, after the single characters)."""
    return [t for t in tokenizer.ids_to_tokens[5:] if len(t.removeprefix("##")) > 1][:n]


print(f"  {'criterion':<12} {'vocabulary':>10} {'OOV rate':>9} {'tokens/text':>11}  "
      "the first 8 pieces it learned")
for name, t in criteria.items():
    r = coverage[name]
    print(f"  {name:<12} {t.vocab_size:>10,} {r['oov_rate']:>9.2%} {r['tokens_per_text']:>11.1f}  "
          f"{' '.join(learned(t, 8))}")
digits = {name: sum(any(c.isdigit() for c in p) for p in learned(t, 100))
          for name, t in criteria.items()}
print(f"pieces with a digit among the first 100 learned: frequency {digits['frequency']}, "
      f"likelihood {digits['likelihood']}")
counts = Counter(w for line in test_lines for w in words_of(line))
differ = [w for w, _ in counts.most_common() if trained.tokenize(w) != likeliest.tokenize(w)]
print(f"the most frequent words of the unseen text that the two spell differently "
      f"({len(differ)} in all):")
for w in differ[:6]:
    print(f"  {w:<12} ({counts[w]:>3} times)  frequency: {' '.join(trained.tokenize(w)):<16} "
          f"likelihood: {' '.join(likeliest.tokenize(w))}")
ratio = coverage["likelihood"]["tokens_per_text"] / coverage["frequency"]["tokens_per_text"]
print(f"-> with {likeliest.vocab_size:,} pieces against {trained.vocab_size:,}, 'likelihood' "
      f"spells {ratio:.2f}x as many tokens per text ({'more' if ratio > 1 else 'fewer'}).")
print("   Dividing by the parts' counts favours pairs of rare parts: the merges go to rare")
print("   strings, and a frequent word whose letters are frequent everywhere stays in pieces.")
print("   'frequency' spends the vocabulary where the text is: on what it holds most often.")

print("\nRead next: vocabulary_coverage in minibert/tokenizer.py (the measures), Tokenizer.train")
print("and minibert/wordpiece_trainer.py (how the merges are chosen); lesson 1 for the mechanics")
print("of one sentence.")
