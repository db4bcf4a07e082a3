"""Fuzz the topic router and every parser for longer than the tests do.

    python bench/fuzz.py [--minutes 5] [--per-kind 100000] [--seed 1]
    python bench/fuzz.py --atheris [--minutes 5]      # coverage-guided (pip install atheris)

Seeded mode: round after round (seed, seed+1, ...) until the time is up, `--per-kind`
messages of each kind from `gridwatch.simulators.bad_input` — random bytes, truncation,
flipped bytes, deep nesting, huge and tiny numbers, NaN spellings, Unicode edge cases,
wrong types, duplicate keys, oversized payloads, other encodings, odd topics, and valid
messages — each judged by `gridwatch.simulators.parse_verdicts`: a valid storable model,
an OwnTracks message ignored on purpose, or InvalidPayload with a one-line reason. Anything
else is a problem, printed with the message that shows it. The rate is of routing and
parsing alone (judging is not timed); the baseline, measured on the same messages in the
same run, is orjson.loads alone: the ratio says what routing and validating cost on top of
decoding JSON.

Atheris mode: libFuzzer mutates bytes guided by the coverage of the parsing code, from a seed
corpus of generated messages; an input's first byte picks the kind, its second the topic id
(mostly a plain one), the rest is the payload.

The last line printed is one JSON object. The exit code is 1 when a problem was found.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from gridwatch.ingest.payload import ParseContext
from gridwatch.ingest.topics import TopicRouter
from gridwatch.simulators.bad_input import KINDS, BadInput
from gridwatch.simulators.parse_verdicts import verdict

PREFIX = "gw"


def fuzz_seeded(minutes: float, per_kind: int, seed: int) -> dict:
    now = datetime.now(UTC)
    ctx = ParseContext(now, ZoneInfo("Asia/Shanghai"))
    router = TopicRouter(PREFIX)
    deadline = time.monotonic() + minutes * 60
    states: dict[str, Counter] = {kind: Counter() for kind in KINDS}
    parse_s = dict.fromkeys(KINDS, 0.0)
    decode_s = dict.fromkeys(KINDS, 0.0)
    problems: dict[tuple, str] = {}
    rounds = 0
    while rounds == 0 or time.monotonic() < deadline:
        generator = BadInput(seed + rounds, now, prefix=PREFIX)
        for kind in KINDS:
            messages = list(generator.messages(kind, per_kind))
            started = time.perf_counter()
            for message in messages:
                with contextlib.suppress(orjson.JSONDecodeError):
                    orjson.loads(message.payload)
            decode_s[kind] += time.perf_counter() - started
            started = time.perf_counter()
            for message in messages:
                with contextlib.suppress(Exception):  # judged below, untimed
                    router.parse(message.topic, message.payload, ctx)
            parse_s[kind] += time.perf_counter() - started
            for form, topic, payload in messages:
                state, _reading, problem = verdict(router, topic, payload, kind, ctx)
                if form == "valid" and state == "refused":
                    problem = "a valid message was refused"
                states[kind][state] += 1
                if problem:
                    key = (kind, form, state, problem[:60])
                    problems.setdefault(key, f"{topic[:80]!r} {payload[:200]!r}: {problem}")
        rounds += 1
        total = sum(sum(c.values()) for c in states.values())
        print(f"round {rounds}: {total:,} messages, {len(problems)} problems", flush=True)

    for (kind, form, state, _), example in sorted(problems.items()):
        print(f"PROBLEM {kind}/{form} {state}: {example}")
    per_kind = {}
    for kind in KINDS:
        count = sum(states[kind].values())
        per_kind[kind] = {
            "messages": count,
            "seconds": round(parse_s[kind], 2),
            "rate": round(count / parse_s[kind]),
            "ratio_to_orjson": round(parse_s[kind] / decode_s[kind], 1),
            **dict(states[kind]),
        }
        ratio = parse_s[kind] / decode_s[kind]
        print(
            f"{kind:9} {count:>10,} messages in {parse_s[kind]:6.1f} s "
            f"({count / parse_s[kind]:>9,.0f}/s, {ratio:4.1f} x orjson.loads alone): "
            f"{dict(states[kind])}"
        )
    messages = sum(p["messages"] for p in per_kind.values())
    seconds = sum(parse_s.values())
    return {
        "mode": "seeded",
        "rounds": rounds,
        "messages": messages,
        "seconds": round(seconds, 1),
        "rate": round(messages / seconds),
        "ratio_to_orjson": round(seconds / sum(decode_s.values()), 1),
        "escaped": sum(c["escaped"] for c in states.values()),
        "problems": len(problems),
        "per_kind": per_kind,
    }


# Topic ids the fuzzer picks from by the input's second byte: mostly a plain one.
ATHERIS_IDS = ("X-1",) * 8 + ("", "a\x00b", "x" * 129, "\u202eW", "网格员1", "a\tb")


def atheris_topic(data: bytes) -> tuple[str, str, bytes]:
    """(kind, topic, payload) from a fuzzer's input: kind, topic id, then the payload."""
    kind = KINDS[data[0] % len(KINDS)]
    ident = ATHERIS_IDS[data[1] % len(ATHERIS_IDS)]
    topic = f"owntracks/{ident}/phone" if kind == "owntracks" else f"{PREFIX}/{kind}/{ident}"
    return kind, topic, data[2:]


def fuzz_atheris(minutes: float, seed: int) -> dict:
    """Run libFuzzer in a child process (it ends the process when done) on a seed corpus of
    generated messages, and report what it printed."""
    corpus = Path(tempfile.mkdtemp(prefix="gridwatch-fuzz-"))
    generator = BadInput(seed, datetime.now(UTC), prefix=PREFIX)
    for n, kind in enumerate(KINDS):
        for i, message in enumerate(generator.messages(kind, 200)):
            payload = message.payload[:4000]
            (corpus / f"{kind}-{i}").write_bytes(bytes([n, 0]) + payload)
    artifacts = corpus.parent / f"{corpus.name}-crashes"
    artifacts.mkdir()
    seconds = max(1, int(minutes * 60))
    command = [sys.executable, __file__, "--atheris-child", f"-max_total_time={seconds}",
               "-max_len=4096", f"-artifact_prefix={artifacts}/", str(corpus)]  # fmt: skip
    started = time.monotonic()
    child = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - this very script, as the atheris child
    seconds = time.monotonic() - started
    log = child.stdout + child.stderr
    done = re.findall(r"Done (\d+) runs in (\d+) second", log)
    coverage = re.findall(r"cov: (\d+) ft: (\d+)", log)
    problem = re.search(r"AssertionError: .*|Uncaught Python exception: .*", log)
    if problem:
        print("PROBLEM", problem.group(0)[:400])
        print(f"the input that shows it is in {artifacts}")
    else:
        shutil.rmtree(artifacts, ignore_errors=True)
    shutil.rmtree(corpus, ignore_errors=True)
    return {
        "mode": "atheris",
        "seconds": round(seconds, 1),
        "runs": int(done[-1][0]) if done else None,
        "coverage": int(coverage[-1][0]) if coverage else None,
        "features": int(coverage[-1][1]) if coverage else None,
        "problems": int(bool(problem)) or (0 if child.returncode == 0 else 1),
        "exit_code": child.returncode,
    }


def atheris_child() -> None:
    import atheris

    atheris.instrument_all()
    ctx = ParseContext(datetime.now(UTC), ZoneInfo("Asia/Shanghai"))
    router = TopicRouter(PREFIX)

    def one_input(data: bytes) -> None:
        if len(data) < 2:
            return
        kind, topic, payload = atheris_topic(data)
        _state, _reading, problem = verdict(router, topic, payload, kind, ctx)
        if problem:
            raise AssertionError(f"{topic!r} {payload[:200]!r}: {problem}")

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="how long (default 1)")
    parser.add_argument("--per-kind", type=int, default=100_000, help="messages per kind a round")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first round")
    parser.add_argument("--atheris", action="store_true", help="coverage-guided, with atheris")
    if sys.argv[1:2] == ["--atheris-child"]:
        atheris_child()
        return 0
    args = parser.parse_args()
    if args.atheris:
        try:
            import atheris  # noqa: F401
        except ImportError:
            sys.exit("bench/fuzz.py: --atheris needs atheris (pip install atheris)")
        result = fuzz_atheris(args.minutes, args.seed)
    else:
        result = fuzz_seeded(args.minutes, args.per_kind, args.seed)
    print(json.dumps(result))
    return 1 if result.get("problems") or result.get("escaped") else 0


if __name__ == "__main__":
    sys.exit(main())
