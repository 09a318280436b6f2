"""Social needs: health concerns found by a social-needs screen, the directory of community
services, and closed-loop referrals to them (issue 23)."""
