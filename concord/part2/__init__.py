"""42 CFR Part 2: which records are labelled, label corrections, emergency access (issue 18)."""
