"""What a finding is: a :class:`Claim` (a paper's statement, the statistic that tests it, one
:class:`~marginlab.experiments.stats.Estimate` per setting, a verdict), a :class:`Check` (the run did what
the paper did: true by construction or a property of the data, never counted as a reproduction) and the
:class:`Report` that lists both for a results folder."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..stats import ALPHA, Estimate, holm

__all__ = ["Claim", "Check", "Report", "REPRODUCED", "NOT_REPRODUCED", "NOT_MEASURED"]

REPRODUCED, NOT_REPRODUCED, NOT_MEASURED = "reproduced", "NOT reproduced", "n/a (not measured)"


@dataclass
class Claim:
    """A paper's claim tested on a run.

    ``statistic`` says what the effect is (oriented: > 0 is the claim's direction); ``parts`` hold one
    estimate per setting (width, eps, loss ...). ``combine="all"``: the claim holds when every part does,
    each at ALPHA (an intersection-union test needs no correction); ``"any"``: it holds when at least one
    part does after Holm's correction over the parts."""

    text: str
    source: str
    statistic: str
    parts: list = field(default_factory=list)
    combine: str = "all"
    context: str = ""

    def __post_init__(self):
        if self.combine not in ("all", "any"):
            raise ValueError(f"combine must be 'all' or 'any', got {self.combine!r}")
        if self.combine == "any" and len(self.parts) > 1:
            self.parts = holm(self.parts)

    @property
    def verdict(self) -> str:
        if not self.parts:
            return NOT_MEASURED
        ok = [p.holds(ALPHA) for p in self.parts]
        return REPRODUCED if (all(ok) if self.combine == "all" else any(ok)) else NOT_REPRODUCED

    def evidence(self, fmt: str = ".3g") -> str:
        return "; ".join(f"{p.label}: {p.text(fmt)}" if p.label else p.text(fmt) for p in self.parts)

    def to_dict(self) -> dict:
        return {
            "claim": self.text,
            "source": self.source,
            "statistic": self.statistic,
            "combine": self.combine,
            "verdict": self.verdict,
            "parts": [p.to_dict() for p in self.parts],
        }


@dataclass
class Check:
    """A setting check: ``holds`` says the run matches the paper's setting; ``evidence`` the numbers."""

    text: str
    holds: bool
    evidence: str

    def to_dict(self) -> dict:
        return {"check": self.text, "holds": bool(self.holds), "evidence": self.evidence}


@dataclass
class Report:
    """The claims and setting checks of one results folder; renders as Markdown (notebooks, CLI)."""

    title: str
    claims: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def add(self, claim: Claim | None) -> None:
        if claim is not None:
            self.claims.append(claim)

    def check(self, text: str, holds, evidence: str) -> None:
        self.checks.append(Check(text, bool(holds), evidence))

    @property
    def reproduced(self) -> int:
        return sum(c.verdict == REPRODUCED for c in self.claims)

    def verdicts(self) -> list[dict]:
        """Every claim as a dict (claim, statistic, parts with estimate, interval and p, verdict)."""
        return [c.to_dict() for c in self.claims]

    def table(self):
        """One row per claim: claim, source, statistic, estimate [90 % interval] per part, verdict."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "claim": c.text,
                    "source": c.source,
                    "statistic": c.statistic,
                    "estimate [CI] (p)": c.evidence(),
                    "verdict": c.verdict,
                }
                for c in self.claims
            ]
        )

    def to_markdown(self) -> str:
        lines = [
            f"### {self.title}",
            "",
            f"Each claim: effect (> 0 = the paper's direction) [{1 - 2 * ALPHA:.0%} bootstrap interval] "
            f"(one-sided p; a claim holds at p < {ALPHA:g}, Holm-adjusted where any of several "
            "settings may show it).",
            "",
        ]
        for c in self.claims:
            how = "every setting" if c.combine == "all" else "any setting, Holm"
            lines.append(
                f"- **{c.verdict}**: {c.text} ({c.source}). _{c.statistic}_ ({how}): "
                f"{c.evidence() or 'not measured'}" + (f". {c.context}" if c.context else "")
            )
        lines += ["", f"{self.reproduced} of {len(self.claims)} claims reproduced."]
        if self.checks:
            lines += ["", "Setting checks (the run did what the paper did; not findings):", ""]
            lines += [f"- {'ok' if k.holds else 'FAILED'}: {k.text} — {k.evidence}" for k in self.checks]
        lines += [f"\n_{n}_" for n in self.notes]
        return "\n".join(lines)

    _repr_markdown_ = to_markdown

    def __str__(self):
        return self.to_markdown()


def not_measured(text: str, source: str, statistic: str, why: str) -> Claim:
    """A claim the run cannot test (its data are absent): reported as such, never as reproduced."""
    return Claim(text, source, statistic, [], context=why)


def est_from(value, replicates, label="") -> Estimate:
    from ..stats import estimate

    return estimate(value, replicates, label=label)
