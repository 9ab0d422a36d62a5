"""stop_tui.lm"""
