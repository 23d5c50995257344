import os

# The channel layer. In development, the in-memory one
# inside runserver. With CHANNELS_REDIS_HOSTS set (Redis
# URLs, separated by spaces, one per Redis server), Redis,
# shared by runwsserver and runworker processes.
if os.environ.get("CHANNELS_REDIS_HOSTS"):
    CHANNEL_BACKENDS = {
        "default": {
            "BACKEND": "channels.backends.redis.RedisChannelBackend",
            "HOSTS": os.environ["CHANNELS_REDIS_HOSTS"].split(),
            "ROUTING": "mysite.routing.channel_routing",
        }
    }
else:
    CHANNEL_BACKENDS = {
        "default": {
            "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
            "ROUTING": "mysite.routing.channel_routing",
        }
    }

# The chat's keepalive consumer renews each socket's channel
# session (its login and room) and presence while it is open:
# the interface server sends keepalives only when asked.
CHANNELS_SERVER = {"WEBSOCKET_KEEPALIVE": True}

# The login page, and where logging in and out lead.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "rooms"
LOGOUT_REDIRECT_URL = "login"
