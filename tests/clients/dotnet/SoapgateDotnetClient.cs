// Real-client check with .NET's SoapHttpClientProtocol, as Mono runs it:
// the proxies Mono's `wsdl` tool generated from the facade's ?wsdl
// (`/protocol:SOAP` into namespace Gen.{Service}.SOAP, `/protocol:SOAP12`
// into Gen.{Service}.SOAP12) are compiled into this program with `mcs`, and
// every operation of the service is called through the generated method.
// Its arguments are the sample request's payload deserialized by
// XmlSerializer against the method's own parameters (the members mapping
// the proxy itself uses), so the request the proxy sends is built by the
// proxy. What comes back — the return value, out and ref parameters — is
// walked through the generated classes and printed as JSON on a `read`
// line for tests/clients/real_clients.rs to check against the contract's
// rules. A fault must arrive as a SoapException whose detail carries
// soapgate's code, or, for a fault the WSDL declares, the fault's element
// (printed on a `read` line too); an async operation's ticket is polled
// with the generated Get{Op}Result method until DONE.
//
// Usage: mono client.exe BASE_URL MANIFEST SERVICE [GENERATED_BASE_URL]
// GENERATED_BASE_URL is the facade the proxies were generated from (its
// address is their Url; BASE_URL by default). MANIFEST: see
// tests/clients/real_clients.rs. Prints one line per check; exits 1 when
// any check failed.

using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Text;
using System.Threading;
using System.Web.Services.Protocols;
using System.Xml;
using System.Xml.Schema;
using System.Xml.Serialization;

public static class SoapgateDotnetClient
{
    const string SoapgateNs = "urn:soapgate:v1";
    const string Soap11Env = "http://schemas.xmlsoap.org/soap/envelope/";
    const string Soap12Env = "http://www.w3.org/2003/05/soap-envelope";

    static int failures = 0;

    sealed class Op
    {
        public string Name, Style, Sample, Expect;
        public string[] Versions;
        public bool OneWay;
    }

    static void Report(bool ok, string what, string detail)
    {
        if (!ok) failures++;
        Console.WriteLine((ok ? "ok   " : "FAIL ") + what + (detail.Length == 0 ? "" : ": " + detail));
        Console.Out.Flush();
    }

    static void Read(string service, Op op, string version, string kind, string label, string json)
    {
        Console.WriteLine("read\t" + service + "\t" + op.Name + "\t" + version + "\t" + kind + "\t" + label + "\t" + json);
        Console.Out.Flush();
    }

    public static int Main(string[] args)
    {
        if (args.Length != 3 && args.Length != 4)
        {
            Console.Error.WriteLine("usage: client.exe BASE_URL MANIFEST SERVICE [GENERATED_BASE_URL]");
            return 2;
        }
        string baseUrl = args[0], service = args[2];
        // The facade the proxies were generated against: their Url points
        // there, and is pointed at BASE_URL for the calls.
        string generatedBase = args.Length == 4 ? args[3] : baseUrl;
        var ops = ReadManifest(args[1], service);
        if (ops.Count == 0)
        {
            Report(false, service + ": manifest", "no operations listed");
            return 1;
        }
        string endpoint = baseUrl + "/soap/" + service;
        var versions = ops.SelectMany(o => o.Versions).Distinct().OrderBy(v => v).ToList();
        foreach (var version in versions)
        {
            string ns = "Gen." + service + "." + (version == "1.1" ? "SOAP" : "SOAP12");
            Type proxyType = typeof(SoapgateDotnetClient).Assembly.GetTypes()
                .FirstOrDefault(t => t.Namespace == ns && typeof(SoapHttpClientProtocol).IsAssignableFrom(t));
            if (proxyType == null)
            {
                Report(false, service + ": SOAP " + version + " proxy", "wsdl generated none in " + ns);
                continue;
            }
            var proxy = (SoapHttpClientProtocol)Activator.CreateInstance(proxyType);
            string where = service + "[" + proxyType.Name + " SOAP " + version + "]";
            Report(proxy.Url == generatedBase + "/soap/" + service, where + ": address", proxy.Url);
            var wantVersion = version == "1.1" ? SoapProtocolVersion.Soap11 : SoapProtocolVersion.Soap12;
            Report(proxy.SoapVersion == wantVersion || (version == "1.1" && proxy.SoapVersion == SoapProtocolVersion.Default),
                where + ": SOAP version", proxy.SoapVersion.ToString());
            proxy.Url = endpoint;
            proxy.Timeout = 30000;
            bool invalidDone = false;
            foreach (var op in ops)
            {
                if (!op.Versions.Contains(version)) continue;
                string what = where + " " + op.Name;
                MethodInfo method = proxyType.GetMethods().FirstOrDefault(m => m.Name == op.Name
                    && (m.IsDefined(typeof(SoapDocumentMethodAttribute), false) || m.IsDefined(typeof(SoapRpcMethodAttribute), false)));
                if (method == null)
                {
                    Report(false, what + ": generated method", "none in " + proxyType.FullName);
                    continue;
                }
                Report(true, what + ": generated method", Signature(method));
                XmlElement payload;
                object[] callArgs;
                try
                {
                    payload = SamplePayload(op.Sample);
                    callArgs = Arguments(method, payload);
                }
                catch (Exception e)
                {
                    Report(false, what + ": sample", Describe(e));
                    continue;
                }
                string label = what + ": sample request";
                switch (op.Expect)
                {
                    case "response":
                        ExpectResponse(service, op, version, label, proxy, method, callArgs);
                        break;
                    case "accepted":
                        ExpectAccepted(label, proxy, method, callArgs);
                        break;
                    case "ticket":
                        ExpectTicket(service, op, version, label, proxy, proxyType, method, callArgs);
                        break;
                    default:
                        if (op.Expect.StartsWith("declared:"))
                            ExpectDeclared(service, op, version, label, proxy, method, callArgs);
                        else
                            ExpectFault(label, op.Expect, version, proxy, method, callArgs);
                        break;
                }
                if (invalidDone || op.Expect != "response") continue;
                // The sample with its payload's first child left out, read
                // into the same arguments: the proxy sends it without that
                // (required) element or with its type's default value.
                var broken = (XmlElement)payload.CloneNode(true);
                var first = broken.ChildNodes.OfType<XmlElement>().FirstOrDefault();
                if (first == null) continue;
                broken.RemoveChild(first);
                object[] brokenArgs;
                try
                {
                    brokenArgs = Arguments(method, broken);
                }
                catch (Exception e)
                {
                    Report(false, what + ": invalid request", Describe(e));
                    continue;
                }
                invalidDone = true;
                ExpectFault(what + ": invalid request (" + first.LocalName + " left out)", "INVALID_REQUEST", version,
                    proxy, method, brokenArgs);
            }
        }
        Console.WriteLine(".NET (Mono " + MonoVersion() + "): " + service + ": " + failures + " failed check(s)");
        return failures == 0 ? 0 : 1;
    }

    static string MonoVersion()
    {
        var t = Type.GetType("Mono.Runtime");
        var m = t == null ? null : t.GetMethod("GetDisplayName", BindingFlags.NonPublic | BindingFlags.Static);
        return m == null ? Environment.Version.ToString() : (string)m.Invoke(null, null);
    }

    static List<Op> ReadManifest(string path, string service)
    {
        var ops = new List<Op>();
        foreach (var raw in File.ReadAllLines(path, Encoding.UTF8))
        {
            if (raw.Length == 0 || raw.StartsWith("#")) continue;
            var f = raw.Split('\t');
            if (f[0] != service) continue;
            ops.Add(new Op
            {
                Name = f[1],
                Style = f[2],
                Versions = f[3].Split(','),
                OneWay = f[4] == "1",
                Sample = f[5],
                Expect = f[6],
            });
        }
        return ops;
    }

    static string Signature(MethodInfo m)
    {
        return m.ReturnType.Name + " " + m.Name + "(" + string.Join(", ", m.GetParameters()
            .Select(p => (p.IsOut ? "out " : p.ParameterType.IsByRef ? "ref " : "") + ElementType(p.ParameterType).Name + " " + p.Name)) + ")";
    }

    static Type ElementType(Type t)
    {
        return t.IsByRef ? t.GetElementType() : t;
    }

    /// The sample's Body payload (a bare payload file is the payload).
    static XmlElement SamplePayload(string path)
    {
        var doc = new XmlDocument { PreserveWhitespace = false };
        doc.Load(path);
        var root = doc.DocumentElement;
        if (root.NamespaceURI != Soap11Env && root.NamespaceURI != Soap12Env) return root;
        foreach (XmlElement child in root.ChildNodes.OfType<XmlElement>())
        {
            if (child.LocalName == "Body")
            {
                var payload = child.ChildNodes.OfType<XmlElement>().FirstOrDefault();
                if (payload == null) throw new Exception(path + ": empty Body");
                return payload;
            }
        }
        throw new Exception(path + ": envelope without a Body");
    }

    /// The method's arguments, read from the payload by XmlSerializer with
    /// the members mapping of its in and ref parameters; out parameters stay
    /// null.
    static object[] Arguments(MethodInfo method, XmlElement payload)
    {
        bool rpc = method.IsDefined(typeof(SoapRpcMethodAttribute), false);
        var ps = method.GetParameters();
        var inputs = ps.Where(p => !p.IsOut).ToList();
        var members = new List<XmlReflectionMember>();
        foreach (var p in inputs)
        {
            var attrs = new XmlAttributes(p);
            if (rpc)
            {
                // rpc/literal part accessors are unqualified.
                if (attrs.XmlElements.Count == 0 && attrs.XmlArray == null)
                    attrs.XmlElements.Add(new XmlElementAttribute { Form = XmlSchemaForm.Unqualified });
                foreach (XmlElementAttribute e in attrs.XmlElements) e.Form = XmlSchemaForm.Unqualified;
                if (attrs.XmlArray != null) attrs.XmlArray.Form = XmlSchemaForm.Unqualified;
            }
            members.Add(new XmlReflectionMember
            {
                MemberName = p.Name,
                MemberType = ElementType(p.ParameterType),
                XmlAttributes = attrs,
            });
        }
        var importer = new XmlReflectionImporter();
        var mapping = importer.ImportMembersMapping(payload.LocalName, payload.NamespaceURI, members.ToArray(), true);
        var serializer = XmlSerializer.FromMappings(new XmlMapping[] { mapping })[0];
        object[] values;
        using (var reader = new XmlNodeReader(payload))
        {
            values = (object[])serializer.Deserialize(reader);
        }
        var args = new object[ps.Length];
        for (int i = 0, j = 0; i < ps.Length; i++)
        {
            if (!ps[i].IsOut) args[i] = values[j++];
        }
        return args;
    }

    /// Invoke; a fault or client error comes back as the exception.
    static object Call(SoapHttpClientProtocol proxy, MethodInfo method, object[] args, out Exception error)
    {
        error = null;
        try
        {
            return method.Invoke(proxy, args);
        }
        catch (TargetInvocationException e)
        {
            error = e.InnerException;
            return null;
        }
    }

    /// The method's outputs as one JSON object: the return value under its
    /// element name, and each out or ref parameter under its own.
    static string Outputs(MethodInfo method, object returned, object[] args)
    {
        var sb = new StringBuilder("{");
        bool first = true;
        if (method.ReturnType != typeof(void) && returned != null)
        {
            var attrs = new XmlAttributes(method.ReturnTypeCustomAttributes);
            string name = MemberName(attrs, method.Name + "Result");
            first = !WriteMember(sb, name, attrs, returned, true);
        }
        var ps = method.GetParameters();
        for (int i = 0; i < ps.Length; i++)
        {
            if (!ps[i].ParameterType.IsByRef || args[i] == null) continue;
            var attrs = new XmlAttributes(ps[i]);
            if (WriteMember(sb, MemberName(attrs, ps[i].Name), attrs, args[i], first)) first = false;
        }
        return sb.Append("}").ToString();
    }

    static void ExpectResponse(string service, Op op, string version, string label, SoapHttpClientProtocol proxy,
        MethodInfo method, object[] args)
    {
        Exception error;
        object returned = Call(proxy, method, args, out error);
        if (error != null)
        {
            Report(false, label, Describe(error));
            return;
        }
        Read(service, op, version, "response", label, Outputs(method, returned, args));
    }

    static void ExpectAccepted(string label, SoapHttpClientProtocol proxy, MethodInfo method, object[] args)
    {
        Exception error;
        Call(proxy, method, args, out error);
        Report(error == null, label, error == null ? "accepted, the one-way method returned" : Describe(error));
    }

    static void ExpectTicket(string service, Op op, string version, string label, SoapHttpClientProtocol proxy,
        Type proxyType, MethodInfo method, object[] args)
    {
        Exception error;
        object returned = Call(proxy, method, args, out error);
        if (error != null)
        {
            Report(false, label, Describe(error));
            return;
        }
        var ticket = Outputs(method, returned, args);
        string jobId = Field(method, returned, args, "jobId") as string;
        object status = Field(method, returned, args, "status");
        if (string.IsNullOrEmpty(jobId) || status == null)
        {
            Report(false, label, "ticket without jobId or status: " + ticket);
            return;
        }
        string pollName = "Get" + op.Name + "Result";
        var poll = proxyType.GetMethod(pollName);
        if (poll == null)
        {
            Report(false, label, "no generated " + pollName + " method");
            return;
        }
        var deadline = DateTime.UtcNow.AddSeconds(120);
        int polls = 0;
        while (true)
        {
            var pollArgs = new object[poll.GetParameters().Length];
            var pollPayload = new XmlDocument().CreateElement(pollName, SoapgateNs);
            var jobEl = pollPayload.OwnerDocument.CreateElement("jobId", SoapgateNs);
            jobEl.InnerText = jobId;
            pollPayload.AppendChild(jobEl);
            pollArgs = Arguments(poll, pollPayload);
            object answer = Call(proxy, poll, pollArgs, out error);
            polls++;
            if (error != null)
            {
                Report(false, label, "polling " + pollName + ": " + Describe(error));
                return;
            }
            string answerStatus = Scalar(Field(poll, answer, pollArgs, "status")) as string;
            string answerJob = Field(poll, answer, pollArgs, "jobId") as string;
            if (answerJob != jobId)
            {
                Report(false, label, "poll answered job " + answerJob + ", not " + jobId);
                return;
            }
            if (answerStatus == "DONE")
            {
                object result = Field(poll, answer, pollArgs, "result");
                if (result == null)
                {
                    Report(false, label, "DONE without a result");
                    return;
                }
                // result holds the operation's response element; its value
                // is what a synchronous call would have returned.
                var sb = new StringBuilder();
                var inner = result.GetType().GetProperties().FirstOrDefault(p => !p.IsDefined(typeof(XmlIgnoreAttribute), false));
                object value = inner == null ? result : inner.GetValue(result, null);
                WriteValue(sb, value, null);
                Read(service, op, version, "ticket", label + " (job " + jobId + ", " + polls + " poll(s))", sb.ToString());
                return;
            }
            if (answerStatus == "FAILED" || DateTime.UtcNow > deadline)
            {
                Report(false, label, "status " + answerStatus + " after " + polls + " poll(s): "
                    + Field(poll, answer, pollArgs, "faultCode") + " " + Field(poll, answer, pollArgs, "faultText"));
                return;
            }
            Thread.Sleep(200);
        }
    }

    /// An output of a call by its element name: the return value or an out
    /// or ref parameter.
    static object Field(MethodInfo method, object returned, object[] args, string name)
    {
        var rattrs = new XmlAttributes(method.ReturnTypeCustomAttributes);
        if (method.ReturnType != typeof(void) && MemberName(rattrs, method.Name + "Result") == name) return returned;
        var ps = method.GetParameters();
        for (int i = 0; i < ps.Length; i++)
        {
            if (ps[i].ParameterType.IsByRef && MemberName(new XmlAttributes(ps[i]), ps[i].Name) == name) return args[i];
        }
        return null;
    }

    static void ExpectFault(string label, string code, string version, SoapHttpClientProtocol proxy, MethodInfo method,
        object[] args)
    {
        Exception error;
        object returned = Call(proxy, method, args, out error);
        if (error == null)
        {
            Report(false, label, "no fault; the call returned " + Outputs(method, returned, args));
            return;
        }
        var fault = error as SoapException;
        if (fault == null)
        {
            Report(false, label, Describe(error) + " instead of a SoapException");
            return;
        }
        string got = SoapgateCode(fault.Detail);
        string soapCode = fault.Code == null ? "" : fault.Code.Name;
        string want = ExpectedSoapCode(code, version);
        var problems = new List<string>();
        if (got != code) problems.Add("soapgate code " + (got ?? "(none)") + ", expected " + code);
        if (soapCode != want) problems.Add("SOAP fault code " + fault.Code + ", expected " + want);
        if (string.IsNullOrEmpty(fault.Message)) problems.Add("empty fault message");
        if (problems.Count > 0)
            Report(false, label, string.Join("; ", problems) + " (detail: " + (fault.Detail == null ? "none" : fault.Detail.OuterXml) + ")");
        else
            Report(true, label, fault.GetType().Name + " " + fault.Code + " " + got + ": " + fault.Message);
    }

    /// A fault the WSDL declares (expect: declared:NAME:CODE:LOCAL:NS): a
    /// SoapException with the SOAP code whose Detail holds the detail
    /// element (wsdl generates no class for a fault's detail); its content
    /// goes out on a `read` line.
    static void ExpectDeclared(string service, Op op, string version, string label, SoapHttpClientProtocol proxy,
        MethodInfo method, object[] args)
    {
        var want = op.Expect.Split(new[] { ':' }, 5);
        string name = want[1], code = want[2], local = want[3], ns = want[4];
        string wantSoap = version == "1.1" ? code : code == "Client" ? "Sender" : "Receiver";
        Exception error;
        object returned = Call(proxy, method, args, out error);
        if (error == null)
        {
            Report(false, label, "no fault; the call returned " + Outputs(method, returned, args));
            return;
        }
        var fault = error as SoapException;
        if (fault == null)
        {
            Report(false, label, Describe(error) + " instead of a SoapException");
            return;
        }
        string soapCode = fault.Code == null ? "" : fault.Code.Name;
        if (soapCode != wantSoap)
        {
            Report(false, label, "SOAP fault code " + fault.Code + ", expected " + wantSoap + ": " + fault.Message);
            return;
        }
        XmlElement el = fault.Detail == null ? null
            : fault.Detail.ChildNodes.OfType<XmlElement>().FirstOrDefault(e => e.LocalName == local && e.NamespaceURI == ns);
        if (el == null)
        {
            Report(false, label, "no {" + ns + "}" + local + " in the detail: " + (fault.Detail == null ? "none" : fault.Detail.OuterXml));
            return;
        }
        var sb = new StringBuilder();
        WriteXml(sb, el);
        Read(service, op, version, "fault", label + ": declared fault " + name + " as " + fault.GetType().Name + " " + fault.Code
            + ": " + fault.Message, sb.ToString());
    }

    /// An element as plain data: children by local name (repeated ones as
    /// a list), attributes as "@name", a leaf's text as a string.
    static void WriteXml(StringBuilder sb, XmlElement el)
    {
        var children = el.ChildNodes.OfType<XmlElement>().ToList();
        var attrs = el.Attributes.OfType<XmlAttribute>()
            .Where(a => a.NamespaceURI != "http://www.w3.org/2000/xmlns/" && a.NamespaceURI != "http://www.w3.org/2001/XMLSchema-instance")
            .ToList();
        if (children.Count == 0 && attrs.Count == 0)
        {
            WriteString(sb, el.InnerText);
            return;
        }
        sb.Append('{');
        bool first = true;
        foreach (var a in attrs)
        {
            if (!first) sb.Append(',');
            first = false;
            WriteString(sb, "@" + a.LocalName);
            sb.Append(':');
            WriteString(sb, a.Value);
        }
        if (children.Count == 0)
        {
            sb.Append(",\"#text\":");
            WriteString(sb, el.InnerText);
        }
        foreach (var group in children.GroupBy(c => c.LocalName))
        {
            if (!first) sb.Append(',');
            first = false;
            WriteString(sb, group.Key);
            sb.Append(':');
            var items = group.ToList();
            if (items.Count > 1) sb.Append('[');
            for (int i = 0; i < items.Count; i++)
            {
                if (i > 0) sb.Append(',');
                WriteXml(sb, items[i]);
            }
            if (items.Count > 1) sb.Append(']');
        }
        sb.Append('}');
    }

    static string ExpectedSoapCode(string code, string version)
    {
        bool sender = code == "INVALID_REQUEST";
        if (version == "1.1") return sender ? "Client" : "Server";
        return sender ? "Sender" : "Receiver";
    }

    static string SoapgateCode(XmlNode detail)
    {
        if (detail == null) return null;
        var ns = new XmlNamespaceManager(detail.OwnerDocument == null ? new NameTable() : detail.OwnerDocument.NameTable);
        ns.AddNamespace("sg", SoapgateNs);
        var el = detail.SelectSingleNode(".//sg:Code", ns);
        return el == null ? null : el.InnerText;
    }

    static string Describe(Exception e)
    {
        var s = e.GetType().FullName + ": " + e.Message;
        return e.InnerException == null ? s : s + " <- " + Describe(e.InnerException);
    }

    // --- The generated objects as JSON -------------------------------------

    static string MemberName(XmlAttributes attrs, string fallback)
    {
        if (attrs.XmlAttribute != null)
            return "@" + (string.IsNullOrEmpty(attrs.XmlAttribute.AttributeName) ? fallback : attrs.XmlAttribute.AttributeName);
        if (attrs.XmlArray != null && !string.IsNullOrEmpty(attrs.XmlArray.ElementName)) return attrs.XmlArray.ElementName;
        foreach (XmlElementAttribute e in attrs.XmlElements)
            if (!string.IsNullOrEmpty(e.ElementName)) return e.ElementName;
        return fallback;
    }

    /// Write `"name": value` (after a comma unless first); false when the
    /// value is absent and nothing was written.
    static bool WriteMember(StringBuilder sb, string name, XmlAttributes attrs, object value, bool first)
    {
        if (value == null) return false;
        if (!first) sb.Append(',');
        WriteString(sb, name);
        sb.Append(':');
        string dataType = null;
        foreach (XmlElementAttribute e in attrs.XmlElements)
            if (!string.IsNullOrEmpty(e.DataType)) dataType = e.DataType;
        if (attrs.XmlAttribute != null && !string.IsNullOrEmpty(attrs.XmlAttribute.DataType)) dataType = attrs.XmlAttribute.DataType;
        bool wrappedList = value is IList && !(value is byte[]) && (attrs.XmlArray != null || attrs.XmlArrayItems.Count > 0
            || attrs.XmlElements.Count == 0 && attrs.XmlAttribute == null && attrs.XmlText == null);
        if (wrappedList)
        {
            // An array member without [XmlElement] is XmlSerializer's
            // wrapped array: <name><item/>...</name>.
            string item = null;
            foreach (XmlArrayItemAttribute a in attrs.XmlArrayItems)
                if (!string.IsNullOrEmpty(a.ElementName)) item = a.ElementName;
            if (item == null)
            {
                var t = value.GetType();
                var itemType = t.IsArray ? t.GetElementType() : typeof(object);
                item = XmlTypeName(itemType);
            }
            sb.Append('{');
            WriteString(sb, item);
            sb.Append(':');
            WriteValue(sb, value, dataType);
            sb.Append('}');
        }
        else
        {
            WriteValue(sb, value, dataType);
        }
        return true;
    }

    static string XmlTypeName(Type t)
    {
        if (t == typeof(string)) return "string";
        if (t == typeof(int)) return "int";
        var xt = (XmlTypeAttribute)Attribute.GetCustomAttribute(t, typeof(XmlTypeAttribute));
        return xt != null && !string.IsNullOrEmpty(xt.TypeName) ? xt.TypeName : t.Name;
    }

    static object Scalar(object v)
    {
        if (v is Enum) return EnumName(v);
        return v;
    }

    static string EnumName(object v)
    {
        var field = v.GetType().GetField(v.ToString());
        var xe = field == null ? null : (XmlEnumAttribute)Attribute.GetCustomAttribute(field, typeof(XmlEnumAttribute));
        return xe != null && xe.Name != null ? xe.Name : v.ToString();
    }

    static void WriteValue(StringBuilder sb, object v, string dataType)
    {
        if (v == null)
        {
            sb.Append("null");
            return;
        }
        if (v is string)
        {
            WriteString(sb, (string)v);
            return;
        }
        if (v is bool)
        {
            sb.Append((bool)v ? "true" : "false");
            return;
        }
        if (v is Enum)
        {
            WriteString(sb, EnumName(v));
            return;
        }
        if (v is DateTime)
        {
            var dt = (DateTime)v;
            string text;
            if (dataType == "date") text = dt.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
            else if (dataType == "time") text = XmlConvert.ToString(dt, "HH:mm:ss.FFFFFFFzzz");
            else text = XmlConvert.ToString(dt, XmlDateTimeSerializationMode.RoundtripKind);
            WriteString(sb, text);
            return;
        }
        if (v is byte[])
        {
            WriteString(sb, Convert.ToBase64String((byte[])v));
            return;
        }
        if (v is XmlNode)
        {
            WriteString(sb, ((XmlNode)v).OuterXml);
            return;
        }
        if (v is sbyte || v is byte || v is short || v is ushort || v is int || v is uint || v is long || v is ulong
            || v is float || v is double || v is decimal)
        {
            sb.Append(Convert.ToString(v, CultureInfo.InvariantCulture));
            return;
        }
        var list = v as IList;
        if (list != null)
        {
            sb.Append('[');
            for (int i = 0; i < list.Count; i++)
            {
                if (i > 0) sb.Append(',');
                WriteValue(sb, list[i], dataType);
            }
            sb.Append(']');
            return;
        }
        // A generated class: its serialized properties and fields.
        sb.Append('{');
        bool first = true;
        var type = v.GetType();
        var members = new List<MemberInfo>();
        members.AddRange(type.GetProperties(BindingFlags.Public | BindingFlags.Instance));
        members.AddRange(type.GetFields(BindingFlags.Public | BindingFlags.Instance));
        foreach (var m in members)
        {
            if (m.IsDefined(typeof(XmlIgnoreAttribute), false)) continue;
            var specified = type.GetProperty(m.Name + "Specified") ?? (MemberInfo)type.GetField(m.Name + "Specified");
            if (specified != null && !(bool)Get(specified, v)) continue;
            var attrs = new XmlAttributes(m);
            object value = Get(m, v);
            string name = attrs.XmlText != null ? "#text" : MemberName(attrs, m.Name);
            if (WriteMember(sb, name, attrs, value, first)) first = false;
        }
        sb.Append('}');
    }

    static object Get(MemberInfo m, object target)
    {
        var p = m as PropertyInfo;
        return p != null ? p.GetValue(target, null) : ((FieldInfo)m).GetValue(target);
    }

    static void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
