"""folium maps built from the API's layers."""
