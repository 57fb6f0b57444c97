"""An MQTT 5 client of berth (paho-mqtt): publishes one command with a
response topic and correlation data, waits for the reply on that topic,
checks the correlation data came back, and prints the reply as JSON:
{"code": ..., "content_type": ..., "json": ..., "encrypted": ..., ...}.

    mqtt5.py --port P --topic berth/NODE/cmd/apply [-f FILE | --text TEXT]
             [--protobuf] [--id ID] [--property NAME=VALUE ...]
             [--keyring FILE [--algorithm A] [--key-id ID] [--channel CH] [--tamper] [--stale]]
             [--retain]
"""

import argparse
import json
import os
import sys
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("-f", "--file")
    parser.add_argument("--text", default="")
    parser.add_argument("--protobuf", action="store_true")
    parser.add_argument("--id")
    parser.add_argument("--property", action="append", default=[])
    parser.add_argument("--keyring")
    parser.add_argument("--algorithm", default="aes-256-gcm")
    parser.add_argument("--key-id")
    parser.add_argument("--channel")
    parser.add_argument("--retain", action="store_true")
    parser.add_argument("--tamper", action="store_true")
    parser.add_argument("--stale", action="store_true")
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()

    text = open(args.file).read() if args.file else args.text
    verb = args.topic.split("/cmd/")[1].split("/")[0]
    payload, content_type = peer.request(verb, text, protobuf=args.protobuf, request_id=args.id)
    if args.keyring:
        channel = args.channel or "mqtt:" + args.topic
        payload, content_type = peer.sealed(payload, channel, args), peer.ENCRYPTED

    correlation = uuid.uuid4().bytes
    response_topic = "test/replies/" + uuid.uuid4().hex
    got = {}
    done = threading.Event()
    subscribed = threading.Event()

    def on_connect(client, userdata, flags, reason, properties):
        client.subscribe(response_topic, qos=1)

    def on_subscribe(client, userdata, mid, reasons, properties):
        subscribed.set()

    def on_message(client, userdata, message):
        props = message.properties
        got["correlation_ok"] = getattr(props, "CorrelationData", None) == correlation
        got["content_type"] = getattr(props, "ContentType", None)
        got["code"] = int(dict(getattr(props, "UserProperty", [])).get("code", 0))
        got["data"] = message.payload
        done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id="peer-" + uuid.uuid4().hex[:8])
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    if not subscribed.wait(args.timeout):
        sys.exit("could not subscribe to " + response_topic)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    props.ContentType = content_type
    if args.property:
        props.UserProperty = [tuple(p.split("=", 1)) for p in args.property]
    client.publish(args.topic, payload, qos=1, retain=args.retain, properties=props).wait_for_publish(args.timeout)
    if not done.wait(args.timeout):
        sys.exit("no reply on %s within %ss" % (response_topic, args.timeout))
    client.loop_stop()
    client.disconnect()
    result = peer.reply(got.pop("data"), got["content_type"], args.keyring)
    result.update(got)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
