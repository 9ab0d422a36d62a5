"""stop_tui.store"""
