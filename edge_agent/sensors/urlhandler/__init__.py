"""pyserial URL handlers shipped with edge-agent (``emulated://``).

pyserial's ``serial_for_url`` imports ``<package>.protocol_<scheme>`` for each
package in ``serial.protocol_handler_packages``; importing
``edge_agent.sensors`` appends this package there.
"""
