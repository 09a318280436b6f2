"""Quality measures (eCQMs) as pure functions of a patient's FHIR resources: CMS159 and CMS2.

A domain with no tables and no database access: callers (the FHIR $evaluate-measure door, the
Quality page, the official test cases) hand each measure the resources of one patient.
"""
