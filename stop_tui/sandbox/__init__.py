"""stop_tui.sandbox"""
