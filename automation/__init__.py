"""Call automation: the call model, the integration's rules and the CRM outbox.

It sits above storage (``lookup``), the vendors' protocols (``mango``,
``megaplan``) and the index (``cache``), and imports nothing of ``router``:
the HTTP face calls it, never the other way round.
"""
