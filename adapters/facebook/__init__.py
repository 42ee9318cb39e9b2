"""Facebook channel: Page feed comments and visitor posts (channel ``facebook``) and Messenger (``messenger``)."""
