"""stop_tui.engine"""
