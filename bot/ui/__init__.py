"""Block Kit builders: pure functions from service results to messages, views and modals.

``blocks`` renders ``/classify`` answers, label buttons and alerts; ``retrain`` the
``/retrain`` answers, progress message, result card and its reason modal; ``status``
``/bertbot status``; ``home`` the App Home tab; ``label_modal`` the "Label with bertbot"
modal; ``format`` the small helpers they share. No Slack calls and no listeners here; every
text a user wrote is escaped with :func:`bot.ui.blocks.escape` before it goes into a block.
"""
