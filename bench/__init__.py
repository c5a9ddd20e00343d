"""`python -m bench`: SIPp load against voiplab and Kamailio side by side.

Each server gets the same users, the same SIPp scenarios (bench/sipp/) and the same
ladder of rising rates; the highest rate with zero failures is reported per server and
scenario, with the voiplab/Kamailio ratio. See bench/README.md.
"""
