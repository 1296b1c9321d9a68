"""Services: the decisions behind the bot, called by handlers, CLI and jobs alike."""
