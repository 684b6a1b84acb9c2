"""The auditor console: a web application over the catalog and the evidence vault.

Rooms: ``totp`` (RFC 6238 codes), ``store`` (console state: users, sign-in sessions, API
tokens, reviews, comments, zones, sign-in trail; SQLite in the data directory), ``access``
(roles and zone scoping), ``api`` (every operation, once, plus its OpenAPI description),
``server`` (HTTP: cookies, CSRF, static files, server-sent events). Recording content is only
ever read through ``Vault.get(..., actor="console:<user>")``, so every view and export is in
the vault's audit trail.
"""
