"""Models: what the chat loop talks to.

One provider per wire API; `registry` resolves `provider/model` ids.
"""
