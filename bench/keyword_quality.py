"""Dispute keyword quality against the simulator's ground truth: recall per category and
false warnings per 1,000 texts.

    python bench/keyword_quality.py [--seed 13] [--texts 5000] [--library FILE]

The texts (`gridwatch.simulators.dispute_texts`) are request descriptions, visit and patrol
notes and hazard descriptions of 50 to 300 characters, each labelled with the dispute it
tells of or none: disputes stated in the usual words, disputes told without them
(paraphrases), texts that share words with disputes but tell of none (hard negatives), and
plain ones. The real matcher runs over them with the starter library (or `--library`, a
CSV as `gridwatch keywords import` reads). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json

from gridwatch.disputes.matcher import Matcher
from gridwatch.disputes.starter import starter_keywords
from gridwatch.imports.keywords import read_keywords_csv
from gridwatch.model.vocabulary import DISPUTE_CATEGORIES
from gridwatch.simulators.dispute_texts import FORMS, labelled_texts
from gridwatch.simulators.keyword_quality import KeywordQuality, keyword_quality


def print_report(report: KeywordQuality) -> None:
    """The figures as a table: a row per category, then per form, then overall."""
    print(f"{'category':<10}{'texts':>7}{'found':>7}{'recall':>8}{'false/1000':>12}")
    for c in report.categories:
        recall = "-" if c.recall is None else f"{c.recall:.1%}"
        false = report.per_1000(c.false_warnings)
        print(f"{c.category:<10}{c.texts:>7}{c.found:>7}{recall:>8}{false:>12.1f}")
    print(f"{'form':<14}{'texts':>7}{'found':>7}{'recall':>8}{'false/1000':>12}")
    for form in FORMS:
        found, total = report.found_by_form[form]
        recall = f"{found / total:.1%}" if total else "-"
        false = report.per_1000(report.false_by_form[form])
        texts = report.texts_by_form[form]
        print(f"{form:<14}{texts:>7}{found:>7}{recall:>8}{false:>12.1f}")
    recall = "-" if report.recall is None else f"{report.recall:.1%}"
    print(
        f"overall: {report.texts} texts, {report.disputes} disputes, {report.found} found "
        f"(recall {recall}); {report.warnings} warnings, {report.false_warnings} false "
        f"({report.per_1000(report.false_warnings):.1f} per 1,000 texts, of which "
        f"{report.wrong_category} of another category than the dispute's)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--texts", type=int, default=5000)
    parser.add_argument("--library", help="a keyword CSV instead of the starter library")
    args = parser.parse_args()
    keywords = read_keywords_csv(args.library) if args.library else list(starter_keywords())
    matcher = Matcher(keywords)
    texts = labelled_texts(args.texts, seed=args.seed)
    warned = [{hit.category for hit in matcher.scan(t.text)} for t in texts]
    report = keyword_quality(texts, warned, DISPUTE_CATEGORIES)
    print(f"{len(keywords)} keywords ({'starter' if not args.library else args.library})")
    print_report(report)
    summary = {"seed": args.seed, "words": len(keywords), **report.summary()}
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
