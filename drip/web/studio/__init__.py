"""The studio's pages: lessons, the site's files, lead-magnet builds."""
