"""The officers' console: the programme run from a browser, in Bahasa Indonesia first.

A client of the services' public HTTP APIs and of the identity provider: it owns no topic and
no table (its sessions live in its process), and decides nothing the services do not decide;
it shows their answers and their refusals.
"""
