"""Blocking keys: which stored patients are worth scoring against a new one (pure).

Two records become candidates when they share a key; the database keeps the keys in an
indexed table, so candidate lookup is an index query, never a scan. Keys, for a record
with birth date 1985-04-12, surnames HERNANDEZ and LOPEZ, given name Jesús (`Chuy`):

- `bd:1985-04-12`: the birth date. Catches every pair with the same birth date, whatever
  the names. Block: about 7 among 200,000 patients (90 years of birth dates).
- `bds:1985-04-12`: a day/month swap (`03/04`): the year, then the smaller and the larger
  of day and month; only when both are 12 or less and differ. Block: about 14.
- `ps:ERNANDES|1985M`: a Spanish phonetic surname, the birth year and the sex (when
  known), for every surname the record may carry (paternal, maternal, hyphen parts,
  misfiled, married). Catches a wrong day or month. Block: about 25 for Hernández, a
  handful for a rare surname.
- `md:04-12|ERNANDES`: the birth month and day and a phonetic surname, any year, for every
  surname. Catches a wrong birth year. Block: about 10 for Hernández, 1 for a rare name.
- `gs:JESUS|ERNANDES`: a canonical given name and the phonetic paternal surname. Catches a
  birth date wrong altogether. Block: tens for common pairs.
- `curp:…`, `ssn:…`, `tel:+52656…`: the identifiers. Block: 1 (a household phone: a few).

Recall: a true pair shares at least one key under each mangling DOMAIN.md lists, alone or
combined with another: accents, ñ, nicknames and English forms leave `bd` (and `ps`, `md`);
dropped, hyphenated, misfiled and married surnames leave `bd`, `ps` and `md`; a day/month
swap leaves `bds`; a wrong day or month `ps`, a wrong year `md`, and a wrong date with the
paternal surname and given name right `gs`. A pair is lost only when the date is wrong and
no surname agrees even phonetically, and no identifier or phone is shared.

Size: no key is a name alone (`ps` carries the year and sex, `md` the month and day, `gs` a
given name and a surname), and José and María never make a `gs` key, so `MARIA|GARSIA`
(tens of thousands of people) is not a block. Measured on `benchmarks/border_pairs.py`
data: with 20,000 patients a side a US record meets 6.8 Mexican candidates and 2 of 8,000
true pairs share no key (a married name and a birth date off by one); with 100,000 a side,
about 30 candidates (candidates grow with the stored count). `gs` over every surname
instead of the paternal one cost 20% more candidates and found no more true pairs there.
"""

from __future__ import annotations

from exchange.matching import names
from exchange.matching.features import Features


def blocking_keys(f: Features) -> frozenset[str]:
    keys: set[str] = set()
    born = f.birth_date
    if born is not None:
        keys.add(f"bd:{born.isoformat()}")
        if born.day <= 12 and born.day != born.month:
            low, high = sorted((born.month, born.day))
            keys.add(f"bds:{born.year:04d}-{low:02d}-{high:02d}")
    sounds = {names.phonetic(names.unglue(s)) for s in f.surnames}
    sounds |= {f.phonetic_paternal, f.phonetic_maternal}
    sounds.discard("")
    if born is not None:
        # With the sex (when known) a common surname's block halves; a pair whose sex
        # differs is not one person, or is found by its date.
        keys.update(f"ps:{sound}|{born.year:04d}{f.sex}" for sound in sounds)
    if born is not None:
        keys.update(f"md:{born.month:02d}-{born.day:02d}|{sound}" for sound in sounds)
    if f.phonetic_paternal:
        keys.update(f"gs:{given}|{f.phonetic_paternal}" for given in _given_for_blocking(f))
    if f.curp:
        keys.add(f"curp:{f.curp}")
    if f.ssn:
        keys.add(f"ssn:{f.ssn}")
    keys.update(f"tel:{phone}" for phone in f.phones)
    return frozenset(keys)


def _given_for_blocking(f: Features) -> frozenset[str]:
    """Canonical given names without José and María: a lone `María García` is tens of
    thousands of people, no block."""
    return frozenset(c for c in f.given_canonical if c not in _LEADS)


_LEADS = frozenset({"JOSE", "MARIA"})
