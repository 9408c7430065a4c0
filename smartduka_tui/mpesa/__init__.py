"""Daraja protocol layer: wire models, phone numbers, request building, result codes, client.

Imports neither Textual nor Starlette; the relay shares it with the till.
"""
