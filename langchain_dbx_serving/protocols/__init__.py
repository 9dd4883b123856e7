"""Pure wire formats: LangChain messages to request bodies, and replies back to messages.

Nothing here performs I/O or knows about callbacks; every function takes plain data and
returns plain data, so it can be tested with dicts in and messages out.
"""
