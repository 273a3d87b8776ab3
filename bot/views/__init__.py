"""Block Kit builders for views and reports: pure functions from service results to blocks.

``status`` renders ``/bertbot status``, ``home`` the App Home tab, ``label_modal`` the
"Label with bertbot" modal. No Slack calls and no listeners here; every text a user wrote
is escaped with :func:`bot.blocks.escape` before it goes into a block.
"""
