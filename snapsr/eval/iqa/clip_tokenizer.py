"""CLIP's byte-level BPE tokenizer (Radford et al. 2021), read from the published merges file.

The merges file is ``bpe_simple_vocab_16e6.txt.gz``; it ships inside the ``openai-clip`` and
``open_clip_torch`` packages. Token ids follow CLIP's layout: the 256 byte symbols, the same with
an end-of-word mark, the merges in rank order, then start- and end-of-text.

CLIP splits text with Unicode classes (``\\p{L}``, ``\\p{N}``) of the ``regex`` package; Python's
``re`` has no such classes, so letters are ``[^\\W\\d_]`` and numbers ``\\d`` here. The two agree on
ASCII text, which is all the metric prompts use (tests/test_conformance_iqa.py checks against
the reference tokenizer). CLIP's ``ftfy`` repair of broken Unicode is likewise left out.
"""

from __future__ import annotations

import gzip
import html
import re
from functools import lru_cache
from pathlib import Path

import torch

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2  # CLIP uses the file's first 48,894 merges


@lru_cache
def byte_symbols() -> dict[int, str]:
    """Each byte as a printable character (GPT-2's table): printable Latin-1 bytes map to
    themselves, the rest to code points from 256 on, so no byte becomes whitespace or a control."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table  # insertion order is CLIP's id order


_SPLIT = re.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+", re.IGNORECASE
)


class ClipTokenizer:
    def __init__(self, merges: list[tuple[str, str]]):
        symbols = list(byte_symbols().values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.sot, self.eot = self.encoder["<|startoftext|>"], self.encoder["<|endoftext|>"]
        # the special tokens, when they appear in the text, are single tokens, not spelled out
        self._cache: dict[str, list[str]] = {t: [t] for t in ("<|startoftext|>", "<|endoftext|>")}

    @classmethod
    def from_file(cls, path: str | Path) -> ClipTokenizer:
        lines = gzip.open(path, "rt", encoding="utf-8").read().split("\n")
        merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1] if line.strip()]
        return cls(merges)

    def _bpe(self, word: str) -> list[str]:
        if word in self._cache:
            return self._cache[word]
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            # merge the best-ranked adjacent pair everywhere it occurs, left to right
            pairs = {(a, b) for a, b in zip(parts, parts[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self._cache[word] = parts
        return parts

    def encode(self, text: str) -> list[int]:
        text = html.unescape(html.unescape(text)).strip()
        text = re.sub(r"\s+", " ", text).strip().lower()
        table = byte_symbols()
        ids: list[int] = []
        for word in _SPLIT.findall(text):
            word = "".join(table[b] for b in word.encode("utf-8"))
            ids.extend(self.encoder[p] for p in self._bpe(word))
        return ids

    def __call__(self, texts: list[str], context_length: int = 77) -> torch.Tensor:
        """``(len(texts), context_length)`` int64 ids: start, the text, end, zero padding."""
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [self.sot, *self.encode(text), self.eot]
            if len(ids) > context_length:
                raise ValueError(f"prompt {text!r} is {len(ids)} tokens; the text encoder takes {context_length}")
            out[i, : len(ids)] = torch.tensor(ids)
        return out
