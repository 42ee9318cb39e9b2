"""X (Twitter) channel: mentions and direct messages in, replies and DMs out (API v2 through tweepy's async client)."""
