"""The postback assistant: reads the postback URL an affiliate's platform gave them and proposes
our postback for it. catalog (platforms.toml) and lexer read the pasted URL, names and analysis
map it, clickfield says where the click id travels, create writes the postback; admin and api
are its page and its API view."""
