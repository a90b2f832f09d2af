// Real-client check with JAX-WS RI: drive the classes wsimport generated
// from the facade's published WSDL. The generated Service class is created
// from the facade's ?wsdl (it fetches and parses it again), every SOAP port
// it offers is obtained, and every operation of the service is called
// through the generated port interface with arguments unmarshalled by JAXB
// from the sample request. What each call must get comes from the manifest:
// a response, read through the JAXB beans' fields (return value and Holder
// out-parameters) and checked against the field rules derived from the
// contract (rules.tsv beside the manifest); a @Oneway call that returns; a
// SOAPFaultException whose detail carries the given soapgate code; or, for
// a fault the WSDL declares, the exception class wsimport generated for it,
// whose getFaultInfo() bean is printed as JSON on a `read` line for
// tests/clients/real_clients.rs to check. Per port, one call of an
// answering operation with a required field set to null must fail with
// INVALID_REQUEST.
//
// Usage: java SoapgateJaxwsClient BASE_URL MANIFEST SERVICE PACKAGE CLASSES_DIR
// MANIFEST: see tests/clients/real_clients.rs. CLASSES_DIR holds the compiled
// generated classes of PACKAGE. Prints one line per check; exits 1 when any
// check failed.

import java.io.File;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.net.URL;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Parameter;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import javax.jws.Oneway;
import javax.jws.WebMethod;
import javax.jws.WebParam;
import javax.jws.WebResult;
import javax.jws.soap.SOAPBinding;
import javax.xml.bind.JAXBContext;
import javax.xml.bind.JAXBElement;
import javax.xml.bind.Unmarshaller;
import javax.xml.bind.annotation.XmlAttribute;
import javax.xml.bind.annotation.XmlElement;
import javax.xml.bind.annotation.XmlElementRef;
import javax.xml.bind.annotation.XmlValue;
import javax.xml.datatype.Duration;
import javax.xml.datatype.XMLGregorianCalendar;
import javax.xml.namespace.QName;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.soap.Detail;
import javax.xml.soap.SOAPFault;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.Holder;
import javax.xml.ws.RequestWrapper;
import javax.xml.ws.Service;
import javax.xml.ws.WebEndpoint;
import javax.xml.ws.soap.SOAPFaultException;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

public final class SoapgateJaxwsClient {
    static final String SOAPGATE_NS = "urn:soapgate:v1";
    static final String SOAP11_HTTP = "http://schemas.xmlsoap.org/wsdl/soap/http";
    static final String SOAP12_HTTP = "http://www.w3.org/2003/05/soap/bindings/HTTP/";
    static final Set<String> ENVELOPE_NS = Set.of(
            "http://schemas.xmlsoap.org/soap/envelope/",
            "http://www.w3.org/2003/05/soap-envelope");

    static final String WSDL_NS = "http://schemas.xmlsoap.org/wsdl/";
    static final String WSDL_SOAP11_NS = "http://schemas.xmlsoap.org/wsdl/soap/";
    static final String WSDL_SOAP12_NS = "http://schemas.xmlsoap.org/wsdl/soap12/";

    // SAAJ warns on every message factory lookup about a deprecated service
    // name in its own jar; held here so the level sticks.
    static final java.util.logging.Logger SAAJ_LOG = java.util.logging.Logger.getLogger("javax.xml.soap");

    static int failures = 0;
    // The service under test, for `read` lines.
    static String SERVICE = "";

    static void report(boolean ok, String what, String detail) {
        if (!ok) {
            failures++;
        }
        System.out.println((ok ? "ok   " : "FAIL ") + what + (detail.isEmpty() ? "" : ": " + detail));
        System.out.flush();
    }

    record Op(String name, String style, List<String> versions, boolean oneWay, String sample, String expect) {}

    record Rule(String path, String kind, String arg) {}

    // Response rules of this service's operations, by operation name.
    static Map<String, List<Rule>> RULES = new HashMap<>();

    record Sample(List<Element> headers, List<Element> payload) {}

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: SoapgateJaxwsClient BASE_URL MANIFEST SERVICE PACKAGE CLASSES_DIR");
            System.exit(2);
        }
        SAAJ_LOG.setLevel(java.util.logging.Level.SEVERE);
        String base = args[0];
        String service = args[2];
        SERVICE = service;
        String pkg = args[3];
        File classesDir = new File(args[4]);
        List<Op> ops = readManifest(args[1], service);
        RULES = readRules(new File(new File(args[1]).getParentFile(), "rules.tsv").getPath(), service);
        if (ops.isEmpty()) {
            report(false, service + ": manifest", "no operations listed");
            System.exit(1);
        }
        String endpoint = base + "/soap/" + service;

        Class<?> serviceClass = findServiceClass(classesDir, pkg);
        if (serviceClass == null) {
            report(false, service + ": generated Service class", "none in package " + pkg);
            System.exit(1);
        }
        Service svc;
        try {
            // From this facade's ?wsdl, not the URL wsimport ran against:
            // the same classes serve every run.
            svc = (Service) serviceClass.getConstructor(URL.class).newInstance(new URL(endpoint + "?wsdl"));
        } catch (InvocationTargetException e) {
            report(false, service + ": create " + serviceClass.getName(), describe(e.getCause()));
            e.getCause().printStackTrace(System.out);
            System.exit(1);
            return;
        }
        report(true, service + ": create " + serviceClass.getName(), "WSDL " + svc.getWSDLDocumentLocation());

        Set<String> soapPorts = soapPortNames(svc.getWSDLDocumentLocation().toString(), service);
        Map<String, Boolean> seenVersion = new LinkedHashMap<>();
        for (Method getter : serviceClass.getMethods()) {
            WebEndpoint we = getter.getAnnotation(WebEndpoint.class);
            if (we == null || getter.getParameterCount() != 0) {
                continue;
            }
            if (!soapPorts.contains(we.name())) {
                System.out.println("note " + service + "[" + we.name() + "]: not a SOAP port of the WSDL, skipped");
                continue;
            }
            Object port;
            String bindingId;
            try {
                port = getter.invoke(svc);
                bindingId = ((BindingProvider) port).getBinding().getBindingID();
            } catch (Exception e) {
                Throwable cause = e instanceof InvocationTargetException ? e.getCause() : e;
                System.out.println("note " + service + "[" + we.name() + "]: not a usable port: " + describe(cause));
                continue;
            }
            String version;
            if (SOAP11_HTTP.equals(bindingId)) {
                version = "1.1";
            } else if (SOAP12_HTTP.equals(bindingId)) {
                version = "1.2";
            } else {
                System.out.println("note " + service + "[" + we.name() + "]: binding " + bindingId + " is not SOAP, skipped");
                continue;
            }
            seenVersion.put(version, true);
            String where = service + "[" + we.name() + " SOAP " + version + "]";
            BindingProvider bp = (BindingProvider) port;
            Object address = bp.getRequestContext().get(BindingProvider.ENDPOINT_ADDRESS_PROPERTY);
            report(endpoint.equals(address), where + ": address", String.valueOf(address));
            bp.getRequestContext().put("com.sun.xml.ws.connect.timeout", 30_000);
            bp.getRequestContext().put("com.sun.xml.ws.request.timeout", 30_000);
            Class<?> sei = getter.getReturnType();
            boolean invalidDone = false;
            for (Op op : ops) {
                if (!op.versions().contains(version)) {
                    continue;
                }
                boolean answered = callOperation(where + " " + op.name(), version, port, sei, op);
                if (answered && !invalidDone) {
                    invalidDone = callInvalid(where + " " + op.name(), version, port, sei, op);
                }
            }
            if (!invalidDone && ops.stream().anyMatch(o -> o.expect().equals("response"))) {
                System.out.println("note " + where + ": no operation let JAX-WS send an invalid request");
            }
        }
        for (Op op : ops) {
            for (String v : op.versions()) {
                if (!seenVersion.containsKey(v)) {
                    report(false, service + ": SOAP " + v + " port", "the generated Service offers none");
                    seenVersion.put(v, true);
                }
            }
        }
        System.out.println("JAX-WS RI: " + service + ": " + failures + " failed check(s)");
        System.exit(failures == 0 ? 0 : 1);
    }

    static Method findMethod(Class<?> sei, String operation) {
        for (Method m : sei.getMethods()) {
            WebMethod wm = m.getAnnotation(WebMethod.class);
            String name = wm != null && !wm.operationName().isEmpty() ? wm.operationName() : m.getName();
            if (name.equals(operation)) {
                return m;
            }
        }
        return null;
    }

    // Call one operation with its sample; true when it answered as the
    // manifest expects a response to.
    static boolean callOperation(String what, String version, Object port, Class<?> sei, Op op) {
        Method method = findMethod(sei, op.name());
        if (method == null) {
            List<String> names = new ArrayList<>();
            for (Method m : sei.getMethods()) {
                names.add(m.getName());
            }
            report(false, what + ": generated method", "none for the operation in " + sei.getName() + " " + names);
            return false;
        }
        report(true, what + ": generated method", sei.getSimpleName() + "." + method.getName());
        Object[] callArgs;
        try {
            callArgs = arguments(method, sei, readSample(op.sample()));
        } catch (Exception e) {
            report(false, what + ": sample", describe(e));
            e.printStackTrace(System.out);
            return false;
        }
        String sample = what + ": sample request";
        boolean oneWay = method.isAnnotationPresent(Oneway.class);
        Object result;
        try {
            result = method.invoke(port, callArgs);
        } catch (InvocationTargetException e) {
            if (op.expect().equals("response") || op.expect().equals("accepted") || op.expect().equals("ticket")) {
                report(false, sample, "expected " + op.expect() + ", got " + describe(e.getCause()));
                e.getCause().printStackTrace(System.out);
            } else if (op.expect().startsWith("declared:")) {
                checkDeclared(sample, version, op, e.getCause());
            } else {
                checkFault(sample, version, e.getCause(), op.expect());
            }
            return false;
        } catch (Exception e) {
            report(false, sample, describe(e));
            return false;
        }
        switch (op.expect()) {
            case "accepted":
                report(oneWay && result == null, sample,
                        "accepted, " + (oneWay ? "@Oneway " : "not @Oneway ") + method.getName() + " returned " + result);
                return false;
            case "response":
                checkResponse(sample, method, result, callArgs, RULES.getOrDefault(op.name(), List.of()));
                return true;
            case "ticket":
                checkTicket(sample, port, sei, method, result, callArgs, op);
                return true;
            default:
                report(false, sample, "no SOAPFaultException (" + op.expect() + "); returned " + result);
                return false;
        }
    }

    // The same call with a required field of one of the generated argument
    // beans set to null, so JAXB leaves the element out; true when such a
    // field was found and the call made.
    static boolean callInvalid(String what, String version, Object port, Class<?> sei, Op op) {
        Method method = findMethod(sei, op.name());
        if (method == null || method.isAnnotationPresent(Oneway.class)) {
            return false;
        }
        Object[] callArgs;
        String how;
        try {
            callArgs = arguments(method, sei, readSample(op.sample()));
            how = breakArguments(method, callArgs);
        } catch (Exception e) {
            report(false, what + ": invalid request", describe(e));
            return true;
        }
        if (how == null) {
            return false;
        }
        String check = what + ": invalid request (" + how + ")";
        try {
            Object result = method.invoke(port, callArgs);
            report(false, check, "no SOAPFaultException; returned " + result);
        } catch (InvocationTargetException e) {
            checkFault(check, version, e.getCause(), "INVALID_REQUEST");
        } catch (Exception e) {
            report(false, check, describe(e));
        }
        return true;
    }

    // A required string field of an argument bean, or else (document/literal
    // wrapped, where wsimport unwraps the request into parameters, Holders
    // for the ones the response has too) a parameter the request wrapper
    // requires as a string: set to null, so JAXB leaves its element out.
    static String breakArguments(Method method, Object[] args) throws Exception {
        String how = breakBeans(args);
        return how != null ? how : breakWrapperParameter(method, args);
    }

    @SuppressWarnings("unchecked")
    static String breakWrapperParameter(Method method, Object[] args) throws Exception {
        RequestWrapper rw = method.getAnnotation(RequestWrapper.class);
        if (rw == null) {
            return null;
        }
        Class<?> wrapper = Class.forName(rw.className(), true, method.getDeclaringClass().getClassLoader());
        Parameter[] params = method.getParameters();
        for (int i = 0; i < params.length; i++) {
            WebParam wp = params[i].getAnnotation(WebParam.class);
            if (wp == null || wp.header() || wp.mode() == WebParam.Mode.OUT
                    || rawClass(valueType(params[i])) != String.class) {
                continue;
            }
            for (Field f : fields(wrapper)) {
                XmlElement xe = f.getAnnotation(XmlElement.class);
                if (xe == null || !xe.required() || f.getType() != String.class || !xmlName(f).equals(wp.name())) {
                    continue;
                }
                if (args[i] instanceof Holder<?> h && h.value != null) {
                    ((Holder<Object>) h).value = null;
                } else if (args[i] instanceof String) {
                    args[i] = null;
                } else {
                    continue;
                }
                return "required parameter " + wp.name() + " of " + method.getName() + " set to null";
            }
        }
        return null;
    }

    static String breakBeans(Object[] args) throws IllegalAccessException {
        for (Object a : args) {
            Object bean = a instanceof Holder<?> h ? h.value : a;
            if (bean == null || bean.getClass().getName().startsWith("java.")) {
                continue;
            }
            for (Field f : fields(bean.getClass())) {
                XmlElement xe = f.getAnnotation(XmlElement.class);
                if (xe != null && xe.required() && f.getType() == String.class) {
                    f.setAccessible(true);
                    if (f.get(bean) != null) {
                        f.set(bean, null);
                        return "required " + xmlName(f) + " of " + bean.getClass().getSimpleName() + " set to null";
                    }
                }
            }
        }
        return null;
    }

    // The response as JAXB hands it over — return value and Holder
    // out-parameters — turned into maps by XML name, then checked.
    static void checkResponse(String what, Method method, Object result, Object[] callArgs, List<Rule> rules) {
        Object tree;
        SOAPBinding sb = method.getAnnotation(SOAPBinding.class);
        if (sb == null) {
            sb = method.getDeclaringClass().getAnnotation(SOAPBinding.class);
        }
        boolean bare = sb != null && sb.style() == SOAPBinding.Style.DOCUMENT
                && sb.parameterStyle() == SOAPBinding.ParameterStyle.BARE;
        try {
            if (bare) {
                tree = plain(result);
            } else {
                Map<String, Object> root = new LinkedHashMap<>();
                WebResult wr = method.getAnnotation(WebResult.class);
                if (method.getReturnType() != void.class) {
                    String name = wr == null ? "return" : !wr.partName().isEmpty() && !wr.partName().equals("return")
                            && wr.name().isEmpty() ? wr.partName() : wr.name();
                    root.put(name, plain(result));
                }
                Parameter[] params = method.getParameters();
                for (int i = 0; i < params.length; i++) {
                    WebParam wp = params[i].getAnnotation(WebParam.class);
                    if (wp != null && wp.mode() != WebParam.Mode.IN && callArgs[i] instanceof Holder<?> h) {
                        root.put(wp.name(), plain(h.value));
                    }
                }
                tree = root;
            }
        } catch (Exception e) {
            report(false, what, "reading the response beans: " + describe(e));
            e.printStackTrace(System.out);
            return;
        }
        tree = rewrap(tree, fieldNames(rules));
        List<String> problems = checkRules(tree, rules);
        String shown = String.valueOf(tree);
        if (shown.length() > 300) {
            shown = shown.substring(0, 300) + "...";
        }
        if (problems.isEmpty()) {
            report(true, what, "response read, " + rules.size() + " rule(s) checked: " + shown);
        } else {
            report(false, what, String.join("; ", problems) + " (read: " + shown + ")");
        }
    }

    // The outputs of a call by XML name: the return value under its name and
    // the OUT/INOUT holders under theirs (wrapper style), or the returned
    // bean's fields (bare style).
    @SuppressWarnings("unchecked")
    static Map<String, Object> outputs(Method method, Object result, Object[] callArgs) throws Exception {
        Map<String, Object> root = new LinkedHashMap<>();
        if (method.getReturnType() != void.class) {
            Object p = plain(result);
            if (p instanceof Map<?, ?> m) {
                root.putAll((Map<String, Object>) m);
            }
            WebResult wr = method.getAnnotation(WebResult.class);
            root.put(wr == null || wr.name().isEmpty() ? "return" : wr.name(), p);
        }
        Parameter[] params = method.getParameters();
        for (int i = 0; i < params.length; i++) {
            WebParam wp = params[i].getAnnotation(WebParam.class);
            if (wp != null && wp.mode() != WebParam.Mode.IN && callArgs[i] instanceof Holder<?> h) {
                root.put(wp.name(), plain(h.value));
            }
        }
        return root;
    }

    // Arguments of Get{Op}Result asking about jobId: the string itself, a
    // holder carrying it, or a request bean whose jobId field holds it;
    // empty holders for the outputs.
    static Object[] pollArguments(Method poll, String jobId) throws Exception {
        Parameter[] params = poll.getParameters();
        Object[] args = new Object[params.length];
        for (int i = 0; i < params.length; i++) {
            WebParam wp = params[i].getAnnotation(WebParam.class);
            Class<?> type = params[i].getType();
            if (Holder.class.isAssignableFrom(type)) {
                Holder<Object> h = new Holder<>();
                if (wp != null && wp.name().equals("jobId") && wp.mode() != WebParam.Mode.OUT) {
                    h.value = jobId;
                }
                args[i] = h;
            } else if (type == String.class) {
                args[i] = jobId;
            } else {
                Object bean = type.getDeclaredConstructor().newInstance();
                for (Field f : fields(type)) {
                    if (xmlName(f).equals("jobId")) {
                        f.setAccessible(true);
                        f.set(bean, jobId);
                    }
                }
                args[i] = bean;
            }
        }
        return args;
    }

    // An async operation answered a ticket: poll Get{Op}Result (declared by
    // the published WSDL) until DONE, then check the rules on the original
    // response element inside its result.
    static void checkTicket(String what, Object port, Class<?> sei, Method method, Object result,
            Object[] callArgs, Op op) {
        List<Rule> rules = RULES.getOrDefault(op.name(), List.of());
        Method poll = findMethod(sei, "Get" + op.name() + "Result");
        if (poll == null) {
            report(false, what, "no generated method for Get" + op.name() + "Result");
            return;
        }
        try {
            Map<String, Object> ticket = outputs(method, result, callArgs);
            Object jobId = ticket.get("jobId");
            Object first = ticket.get("status");
            if (!(jobId instanceof String id) || id.isEmpty() || first == null) {
                report(false, what, "ticket " + ticket);
                return;
            }
            long deadline = System.nanoTime() + 120_000_000_000L;
            Map<String, Object> answer;
            int polls = 0;
            while (true) {
                Object[] args = pollArguments(poll, id);
                Object r = poll.invoke(port, args);
                answer = outputs(poll, r, args);
                polls++;
                String status = String.valueOf(answer.get("status"));
                if (!id.equals(answer.get("jobId"))) {
                    report(false, what, "poll answered " + answer + " for job " + id);
                    return;
                }
                if (status.equals("DONE") || status.equals("FAILED") || System.nanoTime() > deadline) {
                    break;
                }
                Thread.sleep(200);
            }
            if (!"DONE".equals(String.valueOf(answer.get("status")))) {
                report(false, what, "after " + polls + " poll(s): " + answer);
                return;
            }
            Object res = answer.get("result");
            if (res instanceof Map<?, ?> m && m.size() == 1) {
                res = m.values().iterator().next();
            }
            Object tree = rewrap(res, fieldNames(rules));
            List<String> problems = checkRules(tree, rules);
            String shown = String.valueOf(tree);
            if (shown.length() > 300) {
                shown = shown.substring(0, 300) + "...";
            }
            if (problems.isEmpty()) {
                report(true, what, "job " + id + ": ticket polled to DONE, " + rules.size()
                        + " rule(s) checked after " + polls + " poll(s): " + shown);
            } else {
                report(false, what, String.join("; ", problems) + " (read: " + shown + ")");
            }
        } catch (InvocationTargetException e) {
            report(false, what, "polling: " + describe(e.getCause()));
            e.getCause().printStackTrace(System.out);
        } catch (Exception e) {
            report(false, what, "polling: " + describe(e));
            e.printStackTrace(System.out);
        }
    }

    // JAXB values as plain data: beans become maps by XML name (attributes
    // "@name", simple content "#text"), enums their XML value, calendars
    // their lexical form.
    static Object plain(Object v) throws Exception {
        if (v == null || v instanceof String || v instanceof Boolean || v instanceof Number) {
            return v;
        }
        if (v instanceof JAXBElement<?> je) {
            return je.isNil() ? null : plain(je.getValue());
        }
        if (v instanceof XMLGregorianCalendar c) {
            return c.toXMLFormat();
        }
        if (v instanceof Duration || v instanceof QName || v instanceof Character) {
            return v.toString();
        }
        if (v instanceof byte[] b) {
            return java.util.Base64.getEncoder().encodeToString(b);
        }
        if (v instanceof Enum<?> e) {
            try {
                return String.valueOf(e.getClass().getMethod("value").invoke(e));
            } catch (NoSuchMethodException none) {
                return e.name();
            }
        }
        if (v instanceof Collection<?> c) {
            List<Object> out = new ArrayList<>();
            for (Object item : c) {
                out.add(plain(item));
            }
            return out;
        }
        Map<String, Object> out = new LinkedHashMap<>();
        for (Field f : fields(v.getClass())) {
            f.setAccessible(true);
            out.put(xmlName(f), plain(f.get(v)));
        }
        return out;
    }

    // The instance fields of a generated bean, superclasses first.
    static List<Field> fields(Class<?> c) {
        List<Field> out = new ArrayList<>();
        for (; c != null && c != Object.class; c = c.getSuperclass()) {
            List<Field> own = new ArrayList<>();
            for (Field f : c.getDeclaredFields()) {
                if (!Modifier.isStatic(f.getModifiers()) && !f.isSynthetic()) {
                    own.add(f);
                }
            }
            out.addAll(0, own);
        }
        return out;
    }

    static String xmlName(Field f) {
        XmlElement xe = f.getAnnotation(XmlElement.class);
        XmlElementRef xr = f.getAnnotation(XmlElementRef.class);
        XmlAttribute xa = f.getAnnotation(XmlAttribute.class);
        if (f.isAnnotationPresent(XmlValue.class)) {
            return "#text";
        }
        if (xa != null) {
            return "@" + ("##default".equals(xa.name()) ? f.getName() : xa.name());
        }
        if (xe != null && !"##default".equals(xe.name())) {
            return xe.name();
        }
        if (xr != null && !"##default".equals(xr.name())) {
            return xr.name();
        }
        return f.getName();
    }

    static Map<String, List<String>> fieldNames(List<Rule> rules) {
        Map<String, List<String>> out = new HashMap<>();
        for (Rule r : rules) {
            if (r.kind().equals("children")) {
                out.put(r.path(), Arrays.asList(r.arg().split("\\|", -1)));
            }
        }
        return out;
    }

    static boolean fits(Object tree, String path, Map<String, List<String>> fields) {
        List<String> names = fields.get(path);
        if (tree instanceof List<?> l) {
            if (l.isEmpty()) {
                return false;
            }
            for (Object item : l) {
                if (!fits(item, path, fields)) {
                    return false;
                }
            }
            return true;
        }
        if (names == null) {
            return !(tree instanceof Map);
        }
        if (!(tree instanceof Map<?, ?> m)) {
            return false;
        }
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (e.getValue() != null && !names.contains(String.valueOf(e.getKey()))) {
                return false;
            }
        }
        return true;
    }

    // wsimport unwraps a response wrapper whose lone child it returns, and
    // rpc parts become the return value: wrap such a value again under the
    // names the contract gives, until it fits.
    static Object rewrap(Object tree, Map<String, List<String>> fields) {
        List<String> chain = new ArrayList<>();
        String path = "";
        while (!fits(tree, path, fields)) {
            List<String> names = fields.getOrDefault(path, List.of());
            if (names.size() != 1) {
                break;
            }
            chain.add(names.get(0));
            path = path.isEmpty() ? names.get(0) : path + "/" + names.get(0);
        }
        Collections.reverse(chain);
        for (String name : chain) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put(name, tree);
            tree = m;
        }
        return tree;
    }

    // Every value at a path, lists flattened at each step, nulls left out.
    static List<Object> valuesAt(Object root, String path) {
        List<Object> current = new ArrayList<>();
        if (root instanceof List<?> l) {
            current.addAll(l);
        } else {
            current.add(root);
        }
        if (path.isEmpty()) {
            return current;
        }
        for (String step : path.split("/")) {
            List<Object> found = new ArrayList<>();
            for (Object v : current) {
                if (v instanceof Map<?, ?> m && m.get(step) != null) {
                    Object x = m.get(step);
                    if (x instanceof List<?> l) {
                        for (Object item : l) {
                            if (item != null) {
                                found.add(item);
                            }
                        }
                    } else {
                        found.add(x);
                    }
                }
            }
            current = found;
        }
        return current;
    }

    static boolean typeOk(String kind, Object v) {
        switch (kind) {
            case "string":
                return v instanceof String;
            case "number":
                return v instanceof Number;
            case "integer":
                return v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte
                        || v instanceof BigInteger
                        || (v instanceof BigDecimal d && d.stripTrailingZeros().scale() <= 0);
            case "boolean":
                return v instanceof Boolean;
            default:
                return false;
        }
    }

    static List<String> checkRules(Object tree, List<Rule> rules) {
        List<String> problems = new ArrayList<>();
        for (Rule r : rules) {
            List<Object> values = valuesAt(tree, r.path());
            String where = r.path().isEmpty() ? "(root)" : r.path();
            switch (r.kind()) {
                case "children": {
                    List<String> names = Arrays.asList(r.arg().split("\\|", -1));
                    for (Object v : values) {
                        if (!(v instanceof Map<?, ?> m)) {
                            problems.add(where + ": " + v + " is not an object");
                            continue;
                        }
                        for (Map.Entry<?, ?> e : m.entrySet()) {
                            if (e.getValue() != null && !names.contains(String.valueOf(e.getKey()))) {
                                problems.add(where + ": unexpected field " + e.getKey() + ", expected " + names);
                            }
                        }
                    }
                    continue;
                }
                case "required":
                    if (values.isEmpty()) {
                        problems.add(where + ": required, absent");
                    }
                    continue;
                case "maxItems":
                    if (values.size() > Integer.parseInt(r.arg())) {
                        problems.add(where + ": " + values.size() + " values, at most " + r.arg() + " allowed");
                    }
                    continue;
                default:
                    break;
            }
            for (Object v : values) {
                String bad = checkValue(r, v);
                if (bad != null) {
                    problems.add(where + " = " + v + ": " + bad);
                }
            }
        }
        return problems;
    }

    static String checkValue(Rule r, Object v) {
        String arg = r.arg();
        switch (r.kind()) {
            case "type":
                return typeOk(arg, v) ? null : "not a " + arg + " (" + v.getClass().getSimpleName() + ")";
            case "enum":
                return Arrays.asList(arg.split("\\|", -1)).contains(String.valueOf(v)) ? null : "not one of " + arg;
            case "pattern":
                return v instanceof String s && Pattern.compile(arg).matcher(s).find() ? null : "does not match " + arg;
            case "minimum":
            case "maximum":
            case "exclusiveMinimum":
            case "exclusiveMaximum": {
                if (!(v instanceof Number)) {
                    return r.kind() + " " + arg + " on a non-number";
                }
                int c = new BigDecimal(v.toString()).compareTo(new BigDecimal(arg));
                boolean ok = switch (r.kind()) {
                    case "minimum" -> c >= 0;
                    case "maximum" -> c <= 0;
                    case "exclusiveMinimum" -> c > 0;
                    default -> c < 0;
                };
                return ok ? null : "out of range (" + r.kind() + " " + arg + ")";
            }
            case "minLength":
                return String.valueOf(v).codePointCount(0, String.valueOf(v).length()) >= Integer.parseInt(arg)
                        ? null : "shorter than " + arg;
            case "maxLength":
                return String.valueOf(v).codePointCount(0, String.valueOf(v).length()) <= Integer.parseInt(arg)
                        ? null : "longer than " + arg;
            case "nonempty":
                return v instanceof String s && !s.isBlank() ? null : "empty text";
            default:
                return "unknown rule " + r.kind();
        }
    }

    static void checkFault(String what, String version, Throwable t, String want) {
        if (!(t instanceof SOAPFaultException)) {
            report(false, what, "expected SOAPFaultException, got " + describe(t));
            t.printStackTrace(System.out);
            return;
        }
        SOAPFault fault = ((SOAPFaultException) t).getFault();
        String code = soapgateCode(fault.getDetail());
        String soapCode = fault.getFaultCodeAsQName().getLocalPart();
        boolean sender = want.equals("INVALID_REQUEST");
        String wantSoap = version.equals("1.1") ? (sender ? "Client" : "Server") : (sender ? "Sender" : "Receiver");
        List<String> problems = new ArrayList<>();
        if (!want.equals(code)) {
            problems.add("soapgate code " + code + ", expected " + want);
        }
        if (!wantSoap.equals(soapCode)) {
            problems.add("SOAP fault code " + fault.getFaultCodeAsQName() + ", expected " + wantSoap);
        }
        if (fault.getFaultString() == null || fault.getFaultString().isEmpty()) {
            problems.add("empty fault string");
        }
        if (problems.isEmpty()) {
            report(true, what, "SOAPFaultException " + soapCode + " " + code + ": " + fault.getFaultString());
        } else {
            report(false, what, String.join("; ", problems));
        }
    }

    // A fault the WSDL declares (expect: declared:NAME:CODE:LOCAL:NS) must
    // arrive as the exception class wsimport generated for it (annotated
    // @WebFault with the detail element's name), whose getFaultInfo() is the
    // detail's JAXB bean; what it holds goes out on a `read` line for
    // tests/clients/real_clients.rs to check against the contract's rules.
    static void checkDeclared(String what, String version, Op op, Throwable t) {
        String[] want = op.expect().split(":", 5);
        String name = want[1];
        String local = want[3];
        String ns = want[4];
        javax.xml.ws.WebFault wf = t.getClass().getAnnotation(javax.xml.ws.WebFault.class);
        if (wf == null) {
            report(false, what, "expected the exception class generated for " + name + ", got " + describe(t));
            t.printStackTrace(System.out);
            return;
        }
        if (!wf.name().equals(local) || !wf.targetNamespace().equals(ns)) {
            report(false, what, t.getClass().getName() + " is @WebFault(" + wf.targetNamespace() + " " + wf.name()
                    + "), expected {" + ns + "}" + local);
            return;
        }
        Object info;
        try {
            info = plain(t.getClass().getMethod("getFaultInfo").invoke(t));
        } catch (Exception e) {
            report(false, what, "reading " + t.getClass().getName() + ".getFaultInfo(): " + describe(e));
            return;
        }
        if (t.getMessage() == null || t.getMessage().isEmpty()) {
            report(false, what, t.getClass().getName() + " without a message (the fault string)");
            return;
        }
        System.out.println(String.join("\t", "read", SERVICE, op.name(), version, "fault",
                what + ": declared fault " + name + " as " + t.getClass().getName() + ": " + t.getMessage(),
                json(info)));
        System.out.flush();
    }

    // Plain data (maps, lists, strings, numbers, booleans) as JSON.
    static String json(Object v) {
        if (v == null) {
            return "null";
        }
        if (v instanceof Boolean || v instanceof Number) {
            return v.toString();
        }
        if (v instanceof Map<?, ?> m) {
            List<String> items = new ArrayList<>();
            for (Map.Entry<?, ?> e : m.entrySet()) {
                items.add(json(String.valueOf(e.getKey())) + ":" + json(e.getValue()));
            }
            return "{" + String.join(",", items) + "}";
        }
        if (v instanceof Collection<?> c) {
            List<String> items = new ArrayList<>();
            for (Object o : c) {
                items.add(json(o));
            }
            return "[" + String.join(",", items) + "]";
        }
        StringBuilder sb = new StringBuilder("\"");
        for (char ch : v.toString().toCharArray()) {
            switch (ch) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (ch < 0x20) {
                        sb.append(String.format("\\u%04x", (int) ch));
                    } else {
                        sb.append(ch);
                    }
                }
            }
        }
        return sb.append('"').toString();
    }

    static String soapgateCode(Detail detail) {
        if (detail == null) {
            return null;
        }
        Iterator<?> entries = detail.getDetailEntries();
        while (entries.hasNext()) {
            Object o = entries.next();
            if (o instanceof Element el && SOAPGATE_NS.equals(el.getNamespaceURI())
                    && "Error".equals(el.getLocalName())) {
                for (Node n = el.getFirstChild(); n != null; n = n.getNextSibling()) {
                    if (n instanceof Element c && SOAPGATE_NS.equals(c.getNamespaceURI())
                            && "Code".equals(c.getLocalName())) {
                        return c.getTextContent().trim();
                    }
                }
            }
        }
        return null;
    }

    // The call's arguments, taken from the sample: JAXB unmarshals the
    // request wrapper (document/literal wrapped), the part accessors
    // (rpc/literal) or the Body elements (bare) into the generated types.
    static Object[] arguments(Method method, Class<?> sei, Sample sample) throws Exception {
        Parameter[] params = method.getParameters();
        Object[] out = new Object[params.length];
        RequestWrapper rw = method.getAnnotation(RequestWrapper.class);
        SOAPBinding sb = method.getAnnotation(SOAPBinding.class);
        if (sb == null) {
            sb = sei.getAnnotation(SOAPBinding.class);
        }
        boolean rpc = sb != null && sb.style() == SOAPBinding.Style.RPC;
        Set<Class<?>> classes = new LinkedHashSet<>();
        try {
            classes.add(Class.forName(sei.getPackageName() + ".ObjectFactory", true, sei.getClassLoader()));
        } catch (ClassNotFoundException e) {
            // A contract without schema types of its own.
        }
        for (Parameter p : params) {
            classes.add(rawClass(valueType(p)));
        }
        Class<?> wrapperClass = null;
        if (rw != null && !rpc) {
            wrapperClass = Class.forName(rw.className(), true, sei.getClassLoader());
            classes.add(wrapperClass);
        }
        // JDK types (String, XMLGregorianCalendar, JAXBElement...) are
        // JAXB built-ins; naming them would only trip the module system.
        classes.removeIf(c -> c.isPrimitive() || c.getName().startsWith("java.")
                || c.getName().startsWith("javax."));
        Unmarshaller u = JAXBContext.newInstance(classes.toArray(new Class<?>[0])).createUnmarshaller();

        Object wrapper = null;
        if (wrapperClass != null) {
            if (sample.payload().isEmpty()) {
                throw new IllegalStateException("the sample Body is empty");
            }
            wrapper = u.unmarshal(sample.payload().get(0), wrapperClass).getValue();
        }
        List<Element> rpcParts = new ArrayList<>();
        if (rpc && !sample.payload().isEmpty()) {
            rpcParts = children(sample.payload().get(0));
        }
        for (int i = 0; i < params.length; i++) {
            Parameter p = params[i];
            WebParam wp = p.getAnnotation(WebParam.class);
            String name = wp == null ? p.getName() : wp.name();
            Object value = null;
            boolean out_only = wp != null && wp.mode() == WebParam.Mode.OUT;
            if (out_only) {
                value = null;
            } else if (wp != null && wp.header()) {
                Element h = find(sample.headers(), name, wp.targetNamespace());
                value = h == null ? null : unmarshal(u, h, valueType(p));
            } else if (wrapper != null) {
                value = wrapperProperty(wrapper, name);
            } else if (rpc) {
                String part = wp != null && !wp.partName().isEmpty() ? wp.partName() : name;
                Element el = find(rpcParts, part, null);
                value = el == null ? null : unmarshal(u, el, valueType(p));
            } else {
                Element el = find(sample.payload(), name, wp == null ? null : wp.targetNamespace());
                value = el == null ? null : unmarshal(u, el, valueType(p));
            }
            // A nillable wrapper child is a JAXBElement in the wrapper bean
            // but a plain value in the method signature.
            if (value instanceof JAXBElement<?> je && rawClass(valueType(p)) != JAXBElement.class) {
                value = je.getValue();
            }
            if (p.getType() == Holder.class) {
                out[i] = new Holder<>(value);
            } else if (value == null && p.getType().isPrimitive()) {
                out[i] = primitiveDefault(p.getType());
            } else {
                out[i] = value;
            }
        }
        return out;
    }

    static Object unmarshal(Unmarshaller u, Element el, Type type) throws Exception {
        Class<?> raw = rawClass(type);
        if (raw == JAXBElement.class && type instanceof ParameterizedType pt) {
            return u.unmarshal(el, rawClass(pt.getActualTypeArguments()[0]));
        }
        if (raw.isPrimitive()) {
            raw = boxed(raw);
        }
        return u.unmarshal(el, raw).getValue();
    }

    // The value of the wrapper bean's property for the XML name `name`.
    static Object wrapperProperty(Object bean, String name) throws IllegalAccessException {
        for (Class<?> c = bean.getClass(); c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                String xmlName = f.getName();
                XmlElement xe = f.getAnnotation(XmlElement.class);
                XmlElementRef xr = f.getAnnotation(XmlElementRef.class);
                XmlAttribute xa = f.getAnnotation(XmlAttribute.class);
                if (xe != null && !"##default".equals(xe.name())) {
                    xmlName = xe.name();
                } else if (xr != null && !"##default".equals(xr.name())) {
                    xmlName = xr.name();
                } else if (xa != null && !"##default".equals(xa.name())) {
                    xmlName = xa.name();
                }
                if (xmlName.equals(name)) {
                    f.setAccessible(true);
                    return f.get(bean);
                }
            }
        }
        throw new IllegalStateException("wrapper " + bean.getClass().getName() + " has no property " + name);
    }

    // The type a parameter carries: T for Holder<T>.
    static Type valueType(Parameter p) {
        Type t = p.getParameterizedType();
        if (p.getType() == Holder.class && t instanceof ParameterizedType pt) {
            return pt.getActualTypeArguments()[0];
        }
        return t;
    }

    static Class<?> rawClass(Type t) {
        if (t instanceof Class<?> c) {
            return c;
        }
        if (t instanceof ParameterizedType pt) {
            return (Class<?>) pt.getRawType();
        }
        return Object.class;
    }

    static Class<?> boxed(Class<?> c) {
        if (c == int.class) return Integer.class;
        if (c == long.class) return Long.class;
        if (c == short.class) return Short.class;
        if (c == byte.class) return Byte.class;
        if (c == boolean.class) return Boolean.class;
        if (c == double.class) return Double.class;
        if (c == float.class) return Float.class;
        if (c == char.class) return Character.class;
        return c;
    }

    static Object primitiveDefault(Class<?> c) {
        if (c == boolean.class) return false;
        if (c == char.class) return '\0';
        if (c == long.class) return 0L;
        if (c == double.class) return 0.0d;
        if (c == float.class) return 0.0f;
        if (c == short.class) return (short) 0;
        if (c == byte.class) return (byte) 0;
        return 0;
    }

    static Element find(List<Element> els, String local, String ns) {
        for (Element e : els) {
            boolean nsOk = ns == null || ns.isEmpty() || ns.equals(e.getNamespaceURI());
            if (local.equals(e.getLocalName()) && nsOk) {
                return e;
            }
        }
        return null;
    }

    static List<Element> children(Element el) {
        List<Element> out = new ArrayList<>();
        for (Node n = el.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element c) {
                out.add(c);
            }
        }
        return out;
    }

    static Sample readSample(String path) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        Document doc = f.newDocumentBuilder().parse(new File(path));
        Element root = doc.getDocumentElement();
        if (!ENVELOPE_NS.contains(root.getNamespaceURI())) {
            return new Sample(List.of(), List.of(root));
        }
        List<Element> headers = List.of();
        List<Element> payload = null;
        for (Element c : children(root)) {
            if ("Header".equals(c.getLocalName())) {
                headers = children(c);
            } else if ("Body".equals(c.getLocalName())) {
                payload = children(c);
            }
        }
        if (payload == null) {
            throw new IllegalStateException(path + ": envelope without a Body");
        }
        return new Sample(headers, payload);
    }

    static List<Op> readManifest(String path, String service) throws Exception {
        List<Op> ops = new ArrayList<>();
        for (String line : Files.readAllLines(new File(path).toPath(), StandardCharsets.UTF_8)) {
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String[] f = line.split("\t", -1);
            if (f.length != 7) {
                throw new IllegalStateException("bad manifest line: " + line);
            }
            if (f[0].equals(service)) {
                ops.add(new Op(f[1], f[2], Arrays.asList(f[3].split(",")), f[4].equals("1"), f[5], f[6]));
            }
        }
        return ops;
    }

    static Map<String, List<Rule>> readRules(String path, String service) throws Exception {
        Map<String, List<Rule>> rules = new HashMap<>();
        for (String line : Files.readAllLines(new File(path).toPath(), StandardCharsets.UTF_8)) {
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String[] f = line.split("\t", -1);
            if (f.length != 5) {
                throw new IllegalStateException("bad rules line: " + line);
            }
            if (f[0].equals(service)) {
                rules.computeIfAbsent(f[1], k -> new ArrayList<>()).add(new Rule(f[2], f[3], f[4]));
            }
        }
        return rules;
    }

    // Names of the ports of `service` in the WSDL at `url` that have a SOAP
    // 1.1 or 1.2 address; wsimport also makes getters for HTTP-binding ports,
    // which are no concern of a SOAP facade.
    static Set<String> soapPortNames(String url, String service) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        Document doc = f.newDocumentBuilder().parse(url);
        Set<String> out = new LinkedHashSet<>();
        for (Element s : children(doc.getDocumentElement())) {
            if (!WSDL_NS.equals(s.getNamespaceURI()) || !"service".equals(s.getLocalName())
                    || !service.equals(s.getAttribute("name"))) {
                continue;
            }
            for (Element port : children(s)) {
                for (Element addr : children(port)) {
                    if ("address".equals(addr.getLocalName())
                            && (WSDL_SOAP11_NS.equals(addr.getNamespaceURI())
                                    || WSDL_SOAP12_NS.equals(addr.getNamespaceURI()))) {
                        out.add(port.getAttribute("name"));
                    }
                }
            }
        }
        return out;
    }

    // The class in PACKAGE that extends javax.xml.ws.Service.
    static Class<?> findServiceClass(File classesDir, String pkg) throws Exception {
        File dir = new File(classesDir, pkg.replace('.', File.separatorChar));
        String[] names = dir.list();
        if (names == null) {
            return null;
        }
        Arrays.sort(names);
        for (String n : names) {
            if (!n.endsWith(".class") || n.contains("$")) {
                continue;
            }
            Class<?> c = Class.forName(pkg + "." + n.substring(0, n.length() - 6));
            if (Service.class.isAssignableFrom(c) && c != Service.class) {
                return c;
            }
        }
        return null;
    }

    static String describe(Throwable t) {
        return t == null ? "null" : t.getClass().getName() + ": " + t.getMessage();
    }
}
