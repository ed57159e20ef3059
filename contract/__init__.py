"""The programme's public contract: its events (with their schemas and the AsyncAPI
document), its policy (rules and figures every service shares) and the read models
consumers build from the topics. It stands on the platform (``shared``) and knows no service."""
