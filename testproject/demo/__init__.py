"""What the demo adds to the getting-started guide's chat (chat/ is
docs/guide/chat): the demo_users command, and the chat's tests."""
