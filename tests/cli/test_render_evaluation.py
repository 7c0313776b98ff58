"""`evaluate`'s tables on an 80-column console: nothing wider, no number, interval or header split across
lines, however many seeds and baselines (a report built from synthetic per-episode scores: no rollout)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from rich.console import Console

from reservoir_rl.catalog import AGENT, BASELINE_NAMES, EXTRA_METRICS, HEADLINE_METRICS, policy_label
from reservoir_rl.cli import render_evaluation as render
from reservoir_rl.cli.format import number
from reservoir_rl.evaluation.report import EvaluationReport, SeedResult, compare


def synthetic_report(seeds: list[int], episodes: int = 12) -> EvaluationReport:
    """Every catalog policy with wide-ranging scores (values from −1,000 to 1,000: the widest cells)."""
    generator = torch.Generator().manual_seed(0)
    metrics = [*HEADLINE_METRICS, *EXTRA_METRICS]

    def scores(shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        return {k: torch.randn(shape, generator=generator, dtype=torch.float64) * 300 - 100 for k in metrics}

    per_episode = {AGENT: scores((len(seeds), episodes)), **{b: scores((episodes,)) for b in BASELINE_NAMES}}
    stats = compare(per_episode, seeds, resamples=200, best_baseline="sdp")
    per_seed = [SeedResult(s, Path(f"runs/run-1/seed-{s}/checkpoints/best.pt"), 20_000, **stats["per_seed"][s])
                for s in seeds]
    return EvaluationReport(
        run_name="run-1", run_dir=Path("runs/run-1"), seeds=seeds, years="heldout", water_years=[2006, 2007],
        episodes=episodes, seed=12345, horizon_days=365, episode_info={}, per_episode=per_episode,
        summary=stats["summary"], iqm=stats["iqm"], per_seed=per_seed, differences=stats["differences"],
        gap_share=stats["gap_share"], agent_better=stats["agent_better"], bootstrap=stats["bootstrap"],
        best_baseline="sdp", gap_share_best=stats["gap_share_best"], validation_returns={"sdp": 1.0},
        validation_episodes=10, notes=["the SOP target (12.5 m³/s) is below the first release level (40 m³/s): "
                                        "every policy that releases it rounds up, a long note wraps"])


def _rendered(report: EvaluationReport, monkeypatch, width: int = 80) -> list[str]:
    buffer = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=buffer, width=width, force_terminal=False))
    render.render_evaluation(report)
    return buffer.getvalue().splitlines()


@pytest.mark.parametrize("n_seeds", [1, 3, 10])
def test_evaluate_tables_fit_80_columns_and_split_no_number(n_seeds, monkeypatch) -> None:
    report = synthetic_report(list(range(n_seeds)))
    lines = _rendered(report, monkeypatch)
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    text = "\n".join(lines)
    # every interval of the metric table whole on one line, below its value
    for policy in report.policies:
        for kind in ("summary", "iqm") if n_seeds > 1 else ("summary",):
            for metric in HEADLINE_METRICS:
                e = getattr(report, kind)[policy][metric]
                pair = f"[{number(e.ci_low)}, {number(e.ci_high)}]"
                assert any(pair in line for line in lines), (policy, kind, metric, pair)
    # the paired differences and, with several seeds, each seed's
    for diff in report.differences.values():
        assert f"[{number(diff['return'].ci_low)}, {number(diff['return'].ci_high)}]" in text
    for r in report.per_seed if n_seeds > 1 else ():
        for b in report.baselines:
            d = r.differences[b]["return"]
            assert f"[{number(d.ci_low)}, {number(d.ci_high)}]" in text
    # headers whole (the catalog's short labels, never wrapped): every policy, every seed-table column
    for name in report.policies:
        assert any(f" {policy_label(name, short=True)} " in f" {line} " for line in lines), name
    if n_seeds > 1:
        for name in report.baselines:
            assert f"− {policy_label(name, short=True)}" in text, name
    assert "\\[" not in text  # no markup escapes shown
    gap = report.gap_share
    assert any(f"{number(gap.value)} [{number(gap.ci_low)}, {number(gap.ci_high)}]" in line for line in lines)
    note = [i for i, line in enumerate(lines) if line.startswith("note: ")]
    assert len(note) == 1 and lines[note[0] + 1].startswith("      ")  # the note wraps, indented


def test_a_wide_console_gets_one_table(monkeypatch) -> None:
    """At 160 columns every policy fits one metric table: the agent column is printed once."""
    lines = _rendered(synthetic_report([0]), monkeypatch, width=160)
    headers = [line for line in lines if line.split()[:1] == ["metric"]]
    assert len(headers) == 1 and all(policy_label(p, short=True) in headers[0] for p in ("agent", "SOP", "DP"))
    narrow = [line for line in _rendered(synthetic_report([0]), monkeypatch, width=80) if line.split()[:1] == ["metric"]]
    assert len(narrow) >= 2 and all(line.split()[1] == "agent" for line in narrow)  # the agent beside each group
