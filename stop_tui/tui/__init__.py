"""stop_tui.tui"""
