"""The local workspace's ids and the bot's Web API tokens.

They are public on purpose: the fake Web API listens on loopback only, and the bot is
configured with these values when it runs against the emulator.
"""

LOCAL_BOT_TOKEN = "xoxb-local-bertbot"
# The app-level token (xapp-) the bot opens a Socket Mode connection with; the fake Web
# API checks it on ``apps.connections.open``, which is why it lives on this side.
LOCAL_APP_TOKEN = "xapp-1-A0BERTBOT-local-bertbot"
# An admin's user token (xoxp-, user scope chat:write): ``chat.delete`` of other people's
# messages (the ``remove`` action) accepts it; the bot token may delete only its own.
LOCAL_ADMIN_USER_TOKEN = "xoxp-local-admin"
LOCAL_TEAM_ID = "T0LOCAL00"
LOCAL_TEAM_DOMAIN = "bertbot-local"
LOCAL_BOT_USER_ID = "U0BERTBOT"
LOCAL_BOT_ID = "B0BERTBOT"
LOCAL_APP_ID = "A0BERTBOT"
DEFAULT_CHANNELS = {"general": "C0GENERAL", "moderators": "C0MODERATORS", "random": "C0RANDOM"}
