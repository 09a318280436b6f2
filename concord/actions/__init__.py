"""Actions: one module per use case that spans domains (issue 17).

A domain decides within itself (measures scores a response, safety applies the risk rules, the
registry opens and closes tasks); an action calls them in order, so every door (the pages, the
JSON API, FHIR, the CLI and the worker) gets the same rule by calling the same function. Actions
import domains; domains never import actions. Like services, actions take the session, an
explicit actor (or access) and keyword arguments, and never commit.
"""
