"""The disclosure log (42 CFR Part 2, issue 18): who received a patient's protected records,
what, when, for what purpose and under which consent (or in an emergency), and the notice
that goes with every such disclosure (§ 2.32)."""
